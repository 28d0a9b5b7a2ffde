"""The tamper-evident, de-identified audit trail: records, hash chain, signed checkpoints, verify, export."""
