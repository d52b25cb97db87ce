"""Capacity planning from measured costs: pure arithmetic, no Ray, no I/O (ADR 0023).

- :mod:`.classes`: the request classes a profile measures and the components that pay for them.
- :mod:`.profile`: the cost profile ``matchday capacity measure`` writes, versioned.
- :mod:`.demand`: a stage table and a persona mix -> requests per second per class over time.
- :mod:`.journeys`: a scenario's mix as ``measure``'s mixed phase sends it (the demand model's).
- :mod:`.mixed`: a role's cost from the scenario's mix measured together, in the plan.
- :mod:`.beside`: CPU per component during validate's steps, beside the model's.
- :mod:`.plan`: demand + profile -> replicas, shards, nodes, PostgreSQL and Redis load, and the
  order in which components saturate.
- :mod:`.deploy` and :mod:`.report`: the plan as a Serve config, a RayService patch, markdown.
"""
