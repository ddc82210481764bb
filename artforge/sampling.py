"""What sampling options mean for every model, shared by torch models and the ONNX samplers
(numpy only: ``artforge sample --onnx`` runs where torch cannot be imported)."""

from __future__ import annotations

from artforge.errors import ArtforgeError

#: the largest --temperature of models that scale their random codes by it (VAEs' Gaussian priors,
#: GANs' noise). Codes far out overflow float32 in the decoders' normalisations, whose variance
#: squares the activations: past about 1e19, torch's LayerNorm and GroupNorm give NaN (a blank
#: picture after the argmax) where onnxruntime, which computes them otherwise, gives other finite
#: values, so one run made other pictures in torch and in ONNX (palette-vae at 1e30: all index 0
#: in torch, three colours in ONNX). Up to this bound both compute the same function, and codes a
#: million standard deviations out are far past any use.
MAX_CODE_TEMPERATURE = 1e6


def check_code_temperature(model: str, temperature: float) -> None:
    """Refuse, in one line, a temperature too large for a model that scales its codes by it."""
    if temperature > MAX_CODE_TEMPERATURE:
        raise ArtforgeError(f"--temperature {temperature:g} is too large for {model}, which scales its random "
                            f"codes by it: at most {MAX_CODE_TEMPERATURE:g} (codes that far out overflow the "
                            "model's float32 arithmetic)")
