"""Devices that speak the real wire formats over pseudo-terminals and MQTT, with fault injection.

Each simulator is an async context manager that runs until the block exits; scenario time comes from a
ScenarioClock (`speed` = scenario seconds per wall second), so content is a function of time only:

    async with GnssSimulator(tmp / "gnss0", rate_hz=5) as sim: ...          # read sim.path (pty)
    async with Hj212Simulator(link=tmp / "hj0", rtd_interval=1) as sim: ... # or host=..., port=...
    async with ModbusSimulator(tmp / "rs485", default_slaves()) as sim: ... # RTU master opens sim.path
    async with MqttSensorsSimulator("127.0.0.1", port) as sim: ...          # sensors/<device>/data

Faults (`simulators.faults`) and value scenarios (`simulators.scenario`) plug into all of them; the
`gridwatch simulate` commands live in `simulators.cli.simulate_app`.
"""
