"""The prover node (``proofmint serve``): a SQLite job queue, warm prover workers, minting,
the HTTP API and the explorer; ``client`` is ``proofmint jobs submit|status|wait``.

Above the stages (like the API facade): it proves (prover) and mints (verifier).
"""
