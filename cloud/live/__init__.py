"""The live stream: case, alert and fleet changes in; sequenced, scope-filtered, conflated events out.

Modules: events (Case / AlertEvent / LivenessEvent -> event payloads), scope (who may see an event), hub
(the sans-I/O core: seq, ring buffer, resume, per-subscriber conflating queues), stream (the thin asyncio
layer, thread-safe publish), tap (hooks on the case engine's writes, alerts and liveness), fanout (the
broker bridge so every API replica sees every event), settings.
"""
