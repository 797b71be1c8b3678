"""The side-by-side benchmark's parts: peer chains (hardhat, ganache) started from an npm
cache outside the repository, Ethereum transfers pre-signed in a separate Python
environment, and one load driver shared by govchain and the peers."""
