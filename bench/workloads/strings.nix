# String building with nixpkgs lib: concatMapStringsSep, replaceStrings and
# splitString over 10^5 items.
let
  lib = import <lib>;
  items = builtins.genList (i: "item-${toString i}") 100000;
  joined = lib.concatMapStringsSep "," (s: "<${s}>") items;
  replaced = builtins.replaceStrings [ "<" ">" "item" ] [ "[" "]" "x" ] joined;
  parts = lib.splitString "," replaced;
in
builtins.stringLength replaced + builtins.length parts
