"""artforge plugin: PSO2 Symbol Art (.saml layered symbols)."""
