int baz(int x) { return x * 2; }
