"""`artforge complete`: keep the top rows of images and let a trained pixel transformer finish them."""

from __future__ import annotations

import click

from artforge.cli.params import INPUT, OUTPUT, check_sampling, check_seed
from artforge.errors import ArtforgeError, shown


@click.command()
@click.argument("run", type=INPUT)
@click.argument("images", nargs=-1, required=True)
@click.option("-k", "--keep-rows", type=int, required=True, help="Rows kept from the top of each image.")
@click.option("-n", "count", type=click.IntRange(1, 64), default=4, show_default=True, help="Completions per image.")
@click.option("-o", "--output", required=True, type=OUTPUT, help="Collage picture to write (.png, .jpg, .webp ...).")
@click.option("-t", "--temperature", type=float, default=1.0, show_default=True)
@click.option("--top-k", type=click.IntRange(1))
@click.option("--top-p", type=float)
@click.option("--seed", type=int, callback=check_seed, default=0, show_default=True)
@click.option("--checkpoint", "which", default="best", show_default=True)
@click.option("--device", default="auto", show_default=True)
def complete(run, images, keep_rows, count, output, temperature, top_k, top_p, seed, which, device) -> None:
    """Complete IMAGES from their top rows: a collage of original | prompt | completions."""
    import numpy as np
    import torch

    from artforge.cli.codec_cmds import expand_inputs, no_usable_inputs
    from artforge.codecs import check_encoded, decode_checked
    from artforge.engine.run import load_run
    from artforge.engine.trainer import pick_device
    from artforge.errors import BadInput
    from artforge.fsutil import check_not_input
    from artforge.grid import save_grid
    from artforge.imageio import check_picture_output, load_image
    from artforge.models import check_model_tokens

    check_picture_output(output)
    check_not_input(output, [p for p, _ in expand_inputs(images, None)])
    check_sampling(temperature, top_p)
    dev = pick_device(device)
    loaded = load_run(run, which=which, device=str(dev), expect_model="hsv-transformer")
    check_not_input(output, loaded.files())
    model, codec = loaded.model, loaded.codec
    H, W = model.H, model.W
    if not 0 <= keep_rows <= H:
        raise ArtforgeError(f"--keep-rows must be between 0 and {H} (the model's image height), got {keep_rows}")
    pictures, skipped = [], 0
    for path, _ in expand_inputs(images, None):
        try:
            img = load_image(path)
        except BadInput as exc:
            click.echo(f"skipped {exc}", err=True)
            skipped += 1
            continue
        if img.shape[:2] != (H, W):
            click.echo(f"note: {shown(path)} is {img.shape[1]}x{img.shape[0]}; resized to the model's {W}x{H}",
                       err=True)
        pictures.append(codec.prepare(img, H))
    if not pictures:
        raise no_usable_inputs(images, skipped)
    batch = np.stack(pictures)
    tokens = torch.from_numpy(check_encoded(codec, codec.encode(batch), len(batch)).astype(np.int64)).to(dev)
    g = torch.Generator(dev).manual_seed(seed)
    out = model.complete(tokens, keep_rows, count, generator=g, temperature=temperature, top_k=top_k, top_p=top_p)
    out = check_model_tokens(model, "complete", out, codec, len(batch), (count, H, W))
    quantised = decode_checked(codec, tokens.cpu().numpy())
    prompt = quantised.copy()
    prompt[:, keep_rows:] = 0  # the rows the model has to make up are left blank
    done = decode_checked(codec, out.reshape(-1, H, W)).reshape(len(batch), count, *quantised.shape[1:])
    cells = []
    for i in range(len(batch)):
        cells += [batch[i], prompt[i], *done[i]]
    save_grid(np.stack(cells), output, ncols=2 + count)
    click.echo(f"{len(batch)} images x {count} completions from {keep_rows} rows -> {shown(output)}"
               + (f" ({skipped} skipped)" if skipped else ""))
