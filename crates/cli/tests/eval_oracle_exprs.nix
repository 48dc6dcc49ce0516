# One expression per line; each must evaluate without error in Nix 2.8.
1 + 2
7 - 10
6 * 7
builtins.div 7 2
builtins.div (-7) 2
1.5 + 2
1 / 3.0
10 / 4
3.0 * 2
0.1 + 0.2
1.0e10
1.0e-5
123456789.0
1.0 / 3.0 * 3.0
builtins.ceil 1.5
builtins.floor (-1.5)
(-(5))
(- 2.5)
"abc" + "def"
"a${"b"}c"
"${toString 42}"
''  indented\n  more''
"esc\t\n\r\\ \${x}"
''a''${b}c''
''a'''b''
builtins.stringLength "héllo"
builtins.substring 1 2 "hello"
builtins.substring 0 100 "hi"
builtins.substring 3 1 "hi"
builtins.toString [ 1 "a" null true false [ 2 ] ]
toString 1.5
toString 100.0
toString 1.0e20
toString null
toString true
toString false
builtins.toJSON { a = 1; b = [ true null "x" 1.5 ]; c."d e" = "\n\"\\"; }
builtins.toJSON 0.1
builtins.toJSON "ü\u0001"
builtins.fromJSON ''{"a": [1, 2.5, "x", null, true], "b": {"c": -3}}''
builtins.fromJSON ''"\u00e9\n"''
builtins.toXML { a = 1; b = [ "x" true ]; }
builtins.concatStringsSep ", " [ "a" "b" "c" ]
builtins.replaceStrings [ "o" "l" ] [ "0" "1" ] "hello world"
builtins.replaceStrings [ "" ] [ "-" ] "abc"
builtins.split "(a)b" "xabyab"
builtins.split "," "a,b,,c"
builtins.match "a(.*)c" "abbbc"
builtins.match "([0-9]+)\\.([0-9]+)" "12.34"
builtins.match "x" "y"
builtins.hashString "sha256" "hello"
builtins.hashString "md5" ""
builtins.hashString "sha1" "abc"
builtins.hashString "sha512" "abc"
builtins.parseDrvName "hello-1.2.3"
builtins.parseDrvName "foo-bar-baz"
builtins.compareVersions "1.2.3" "1.2.10"
builtins.compareVersions "1.0pre1" "1.0"
builtins.splitVersion "1.2.3pre4"
builtins.baseNameOf "/a/b/c.nix"
builtins.dirOf "/a/b/c"
builtins.dirOf "a"
builtins.typeOf 1
builtins.typeOf 1.0
builtins.typeOf "a"
builtins.typeOf null
builtins.typeOf {}
builtins.typeOf []
builtins.typeOf (x: x)
builtins.typeOf builtins.add
builtins.typeOf /a/b
[ 1 2 3 ] ++ [ 4 ]
builtins.length [ 1 2 3 ]
builtins.head [ 1 2 ]
builtins.tail [ 1 2 3 ]
builtins.elemAt [ "a" "b" ] 1
map (x: x * x) [ 1 2 3 ]
builtins.filter (x: x > 1) [ 1 2 3 ]
builtins.foldl' (a: b: a ++ [ b ]) [ ] [ 1 2 3 ]
builtins.genList (i: i * i) 5
builtins.sort (a: b: a > b) [ 3 1 2 5 4 ]
builtins.sort builtins.lessThan [ "b" "a" "c" ]
builtins.elem 2 [ 1 2 3 ]
builtins.concatLists [ [ 1 ] [ ] [ 2 3 ] ]
builtins.concatMap (x: [ x x ]) [ 1 2 ]
builtins.all (x: x > 0) [ 1 2 ]
builtins.any (x: x > 1) [ 1 2 ]
builtins.partition (x: x > 1) [ 1 2 3 ]
builtins.groupBy (x: if x > 1 then "big" else "small") [ 1 2 3 ]
builtins.listToAttrs [ { name = "a"; value = 1; } { name = "a"; value = 2; } ]
builtins.attrNames { b = 1; a = 2; c = 3; }
builtins.attrValues { b = 1; a = 2; }
builtins.mapAttrs (n: v: n + toString v) { a = 1; b = 2; }
builtins.removeAttrs { a = 1; b = 2; } [ "a" "z" ]
builtins.intersectAttrs { a = 1; } { a = 2; b = 3; }
builtins.catAttrs "a" [ { a = 1; } { b = 2; } { a = 3; } ]
builtins.getAttr "a" { a = 5; }
builtins.hasAttr "a" { a = 5; }
builtins.zipAttrsWith (n: vs: vs) [ { a = 1; } { a = 2; b = 3; } ]
builtins.functionArgs ({ a, b ? 1, ... }: a)
builtins.functionArgs (x: x)
builtins.isFunction builtins.map
builtins.isAttrs { }
builtins.isList [ ]
builtins.isInt 1
builtins.isFloat 1
builtins.isBool null
builtins.isNull null
builtins.isPath ./.
builtins.bitAnd 12 10
builtins.bitOr 12 10
builtins.bitXor 12 10
builtins.lessThan 1 2
builtins.add 1.5 2
builtins.sub 1 2.5
builtins.mul 3 4
builtins.seq 1 2
builtins.deepSeq [ 1 ] 2
builtins.tryEval (throw "x")
builtins.tryEval (assert false; 1)
builtins.tryEval 5
builtins.tryEval (builtins.tryEval (throw "y"))
let x = 1; y = x + 1; in y * 2
let f = n: if n == 0 then 1 else n * f (n - 1); in f 10
let fib = n: if n < 2 then n else fib (n - 1) + fib (n - 2); in fib 15
rec { a = 1; b = a + 1; c = b * 2; }
rec { a.b = 1; a.c = a.b + 1; }
{ a.b.c = 1; a.b.d = 2; a.e = 3; }
{ inherit (builtins) length; }.length [ 1 ]
let a = 1; in { inherit a; b = a; }
with { x = 1; }; with { x = 2; y = 3; }; x + y
let x = 5; in with { x = 1; }; x
({ a, b ? a + 1 }: a + b) { a = 1; }
({ a, ... }@args: args) { a = 1; b = 2; }
(args@{ a, b ? 9 }: args) { a = 1; }
(x: y: x - y) 10 3
{ a = 1; } // { b = 2; } // { a = 3; }
{ a = { b = 1; }; } // { a = { c = 2; }; }
{ a = 1; }.a
{ a = 1; }.b or "default"
{ a = 1; } ? a
{ a.b = 1; } ? a.b
({ } ? a) || true
let s = "x"; in { ${s} = 1; "${s}y" = 2; }
{ ${null} = 1; b = 2; }
if true then "yes" else "no"
assert 1 == 1; "ok"
[ (1 == 1.0) (1 < 1.5) ("a" < "b") ([ 1 2 ] == [ 1 2 ]) ({ a = 1; } == { a = 1; }) ]
[ (null == null) (null == false) ((x: x) == (x: x)) ([ 1 ] < [ 2 ]) ]
[ ([ 1 2 ] < [ 1 3 ]) ([ ] < [ 1 ]) (2 > 1) (1 >= 1) (1 != 2) ]
true -> false
false -> throw "not evaluated"
!true
1 + 2 * 3 - 4
builtins.attrNames (builtins.listToAttrs (map (x: { name = x; value = 1; }) [ "b" "a" "_" "A" "1" ]))
builtins.toJSON (builtins.fromJSON "[1, 2.0, 1e3, -0.5]")
builtins.unsafeDiscardStringContext "abc"
builtins.getContext "abc"
builtins.hasContext "abc"
builtins.stringLength (builtins.toString ./.) > 0
builtins.genericClosure { startSet = [ { key = 1; } ]; operator = x: if x.key < 5 then [ { key = x.key + 1; } ] else [ ]; }
builtins.concatStringsSep "" (builtins.genList (i: toString i) 10)
builtins.fromJSON (builtins.toJSON { a = [ 1 2 ]; b = "c"; })
builtins.mapAttrs (n: v: v.x or 0) { a = { x = 1; }; b = { }; }
builtins.foldl' (acc: x: acc // { ${x} = true; }) { } [ "p" "q" ]
let xs = builtins.genList (i: i) 1000; in builtins.foldl' builtins.add 0 xs
builtins.toString (builtins.sort (a: b: a < b) [ 10 9 8 1 2 3 ])
builtins.head (builtins.sort (a: b: a < b) [ 1.5 0.5 1 ])
"${builtins.toString 1.5}"
builtins.fromTOML "a = 1\n[b]\nc = \"d\"\ne = [1, 2]"
builtins.toJSON (builtins.fromTOML "x = 1.5\ny = true")
builtins.attrNames (builtins.fromTOML "[a.b]\nc = 1")
builtins.escapeHTML or null
builtins.substring 0 3 (builtins.hashString "sha256" "x")
builtins.lessThan "abc" "abd"
builtins.genList (x: builtins.elemAt [ "a" "b" "c" ] x) 3
(let inherit ({ a = 1; b = 2; }) a b; in a + b)
builtins.listToAttrs [ ]
{ } == { }
[ ] == [ ]
"" == ""
builtins.isString "${"x"}"
builtins.mapAttrs (name: value: builtins.typeOf value) { a = 1; b = 1.0; c = "s"; d = null; e = [ ]; f = { }; }
builtins.toJSON (builtins.split "(b)|(d)" "abcde")
builtins.match ".*" ""
builtins.match "(a)?b" "b"
builtins.split "x*" "abc"
{ or = 1; "if" = 2; "a b" = 3; x-y = 4; "1a" = 5; "" = 7; }
let l = [ { a = 1; } ]; in [ (builtins.tail l) (builtins.head l) (l == [ { a = 1; } ]) (builtins.length l) (l ++ l) (builtins.concatLists [ l [ ] l ]) ]
[ (builtins.tail [ 1 ]) (builtins.tail (builtins.tail [ 1 2 ])) (builtins.filter (x: false) [ 1 ]) (builtins.map (x: x) [ ]) ([ ] == builtins.tail [ 2 ]) ]
builtins.concatMap (x: [ x ]) [ 1 2 3 ]
