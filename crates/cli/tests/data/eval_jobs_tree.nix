# A small package tree for `ferrix eval-jobs` tests: nix-env's walk
# (recurseForDerivations sets, a set reached under two names, distinct sets
# with the same drvPath, failures) in sets big enough to be cut into units.
{ slowness ? 200000 }:
let
  mk = name: derivation { inherit name; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; };
  # Something slow to evaluate, so the worker that meets `s` first is busy
  # while the next top-level attribute is handed out.
  slow = builtins.foldl' (a: b: a + b) 0 (builtins.genList (x: x) slowness);
  s = mk "same";
  many = prefix: builtins.listToAttrs (builtins.genList (i: { name = "${prefix}${toString i}"; value = mk "${prefix}-${toString i}"; }) 40);
  group = many "p" // {
    recurseForDerivations = true;
    shared = s;
    twin = mk "same";
    inner = many "q" // { recurseForDerivations = true; back = s; };
    notWalked = { x = mk "hidden"; };
    broken = throw "broken package";
    asserted = assert false; mk "never";
    badDrvPath = (mk "bad") // { drvPath = throw "no drv path"; };
  };
in
{
  # A distinct set with the drvPath of `s`, walked first.
  a = mk "same";
  # `s` itself, reached after a slow evaluation.
  b = builtins.seq slow s;
  # `s` again: listed once, as `b`.
  c = s;
  group = group;
  groupAlias = group;
  other = many "r" // { recurseForDerivations = true; again = s; twin = mk "same"; };
  zz = mk "last";
  "not valid" = mk "skipped";
  notRecursed = { recurseForDerivations = false; x = mk "hidden2"; };
}
