"""The experiment wing: paper tables over many DVC experiments, their sharding over workers
and clusters, the report (tables, figures), export of selections and ``coreset show``."""
