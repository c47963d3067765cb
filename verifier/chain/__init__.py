"""The chain: the workspace's embedded anvil (and its keeper), a connected client, the signing
key, the contracts' records, deploy (verifier + registration) and mint (commit, then reveal)."""
