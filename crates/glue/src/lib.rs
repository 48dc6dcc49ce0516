//! ferrix-glue: derivation builtins, string contexts, path import and store-backed evaluation IO.
