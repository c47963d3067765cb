"""The prover node (``proofmint serve``): a SQLite job queue, warm prover workers, minting,
the HTTP API and the explorer; ``client`` is ``proofmint jobs submit|status|wait``.

The last stage: it proves (prover), mints (verifier.chain) and shows assets (verifier.asset).
"""
