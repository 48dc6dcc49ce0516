//! ferrix-eval: the Nix language (lowering, lazy evaluation, builtins that need no store).
