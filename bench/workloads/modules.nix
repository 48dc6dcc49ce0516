# nixpkgs lib's module system: evalModules over 10 000 small modules that each
# declare an option and contribute to a shared list option.
let
  lib = import <lib>;
  n = 10000;
  mkModule = i: { config, ... }: {
    options."opt${toString i}" = lib.mkOption { type = lib.types.int; default = i; };
    config.total = [ config."opt${toString i}" ];
  };
  totalModule = { options.total = lib.mkOption { type = lib.types.listOf lib.types.int; default = [ ]; }; };
  result = lib.evalModules { modules = [ totalModule ] ++ builtins.genList mkModule n; };
in
builtins.foldl' (a: b: a + b) 0 result.config.total
