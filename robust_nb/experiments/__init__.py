"Paper reproductions, one module per paper: a recipe dataclass, a runner returning tidy records, tables, figures and the `robust-nb reproduce` options."
