"""The built-in attack plugins, one per module, registered through entry points exactly as a third party's are; `_common` holds what several of them share (noise samplers)."""
