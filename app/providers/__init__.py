"""Provider adapters: `base` holds the contract, every other module one vendor."""
