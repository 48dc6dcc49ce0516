# Instantiating 10 000 interdependent derivations: each depends on the two
# before it, so the whole chain is written as .drv files.
let
  n = 10000;
  mk = i: deps: derivation {
    name = "d${toString i}";
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" "echo ${toString i} > $out" ];
    inherit deps;
  };
  drvs = builtins.genList (i: mk i (if i < 2 then [ ] else [ (builtins.elemAt drvs (i - 1)) (builtins.elemAt drvs (i - 2)) ])) n;
in
builtins.elemAt drvs (n - 1)
