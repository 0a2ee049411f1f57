"""Networks: one module per model (flow, ...), each configured by a dataclass."""
