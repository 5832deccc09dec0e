"""Plain nn.Modules with typed arguments. Input shape and output size are given by the data spec."""
