print("subspace")
