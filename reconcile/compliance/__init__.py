"""Licence-cycle compliance, pure: requirement profiles (data files parsed and checked here), the cycle a licence
expiry implies, the compliance roster, and the evaluation of a learner's credits against a profile.

No I/O: callers hand in file text and credits; `pipeline/reports/transcript.py` reads files and the ledger.
"""
