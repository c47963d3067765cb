"""The asset's content: named by IPFS CIDs, kept in the workspace's content store, served by a
read-only gateway, and re-hashed whenever it is fetched."""
