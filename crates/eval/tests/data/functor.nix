let f = { __functor = self: x: x + self.n; n = 10; }; in [ (f 1) (builtins.isFunction f) ]
