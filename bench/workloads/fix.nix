# lib.fix with 5000 overlays (the nixpkgs package-set pattern).
let
  lib = import <lib>;
  overlays = builtins.genList (i: final: prev: {
    "p${toString i}" = (prev."p${toString (i - 1)}" or 0) + 1;
    sum = prev.sum + final."p${toString i}";
  }) 5000;
  base = final: { sum = 0; };
  composed = builtins.foldl' (acc: o: lib.extends o acc) base overlays;
in
(lib.fix composed).sum
