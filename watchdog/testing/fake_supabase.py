"""A fake of Supabase's privileged metrics endpoint (``/customer/v1/privileged/metrics``).

It serves the Prometheus text format the way the real endpoint does (EXTERNAL-APIS §4):
``node_cpu_seconds_total`` for every CPU and mode, labelled with ``supabase_project_ref``,
``supabase_identifier`` and ``service_type``, alongside other families, and with label sets
repeated. It checks HTTP Basic (``service_role`` and the secret key). The CPU counters are
scriptable: :meth:`FakeSupabase.run` spends CPU time at a given busy share, and
:meth:`FakeSupabase.restart` resets an instance's counters as a reboot would.
"""

from __future__ import annotations

import base64

from aiohttp import web

from watchdog.testing.server import FakeServer

MODES = ("idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user")
#: how busy time splits across the non-idle modes
_BUSY_SPLIT = {
    "user": 0.60,
    "system": 0.25,
    "iowait": 0.05,
    "softirq": 0.05,
    "irq": 0.02,
    "nice": 0.01,
    "steal": 0.02,
}
DEFAULT_SECRET = "sb_secret_fake"  # noqa: S105 - the fake's own key, not a credential


class FakeSupabase(FakeServer):
    def __init__(
        self,
        *,
        project_ref: str = "abcdefghijklmnop",
        secret_key: str = DEFAULT_SECRET,
        cpus: int = 2,
        replicas: int = 0,
        repeat: bool = True,
    ) -> None:
        super().__init__()
        self.project_ref = project_ref
        self.secret_key = secret_key
        self.cpus = cpus
        #: serve the CPU series twice, as the real endpoint repeats label sets
        self.repeat = repeat
        self.instances = [project_ref] + [
            f"{project_ref}-rr-us-east-1-r{i}" for i in range(1, replicas + 1)
        ]
        self.counters: dict[str, dict[tuple[str, str], float]] = {}
        for name in self.instances:
            self.restart(name)
            self.run(86_400.0, busy=0.2, instance=name)

    @property
    def primary(self) -> str:
        return self.project_ref

    def run(self, seconds: float, busy: float, *, instance: str | None = None) -> None:
        """Let ``seconds`` of wall time pass with the instance(s) ``busy`` (0..1) on every CPU."""
        for name in [instance] if instance else self.instances:
            counters = self.counters[name]
            for cpu in range(self.cpus):
                counters[(str(cpu), "idle")] += seconds * (1.0 - busy)
                for mode, share in _BUSY_SPLIT.items():
                    counters[(str(cpu), mode)] += seconds * busy * share

    def restart(self, instance: str | None = None) -> None:
        """Counters start again near zero, as after a reboot."""
        for name in [instance] if instance else self.instances:
            self.counters[name] = {
                (str(cpu), mode): 1.0 if mode == "idle" else 0.01
                for cpu in range(self.cpus)
                for mode in MODES
            }

    def render(self) -> str:
        """The scrape body, in the Prometheus text exposition format."""
        ref = self.project_ref
        lines = [
            "# HELP pg_up Whether the last scrape of metrics from PostgreSQL was able to connect.",
            "# TYPE pg_up gauge",
        ]
        for name in self.instances:
            lines.append(
                f'pg_up{{service_type="postgresql",supabase_identifier="{name}",'
                f'supabase_project_ref="{ref}"}} 1'
            )
        cpu_block = [
            "# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.",
            "# TYPE node_cpu_seconds_total counter",
        ]
        for name in self.instances:
            for (cpu, mode), value in sorted(self.counters[name].items()):
                cpu_block.append(
                    f'node_cpu_seconds_total{{cpu="{cpu}",mode="{mode}",service_type="db",'
                    f'supabase_identifier="{name}",supabase_project_ref="{ref}"}} {value:.2f}'
                )
        lines += cpu_block
        lines += [
            "# HELP node_load1 1m load average.",
            "# TYPE node_load1 gauge",
            *(
                f'node_load1{{service_type="db",supabase_identifier="{name}",'
                f'supabase_project_ref="{ref}"}} 0.42'
                for name in self.instances
            ),
            "# HELP node_memory_MemAvailable_bytes Memory information field MemAvailable_bytes.",
            "# TYPE node_memory_MemAvailable_bytes gauge",
            *(
                f'node_memory_MemAvailable_bytes{{service_type="db",supabase_identifier="{name}",'
                f'supabase_project_ref="{ref}"}} 1.234567168e+09'
                for name in self.instances
            ),
            "# HELP pg_stat_database_num_backends Number of backends currently connected.",
            "# TYPE pg_stat_database_num_backends gauge",
            *(
                f'pg_stat_database_num_backends{{datid="5",datname="postgres",'
                f'service_type="postgresql",supabase_identifier="{name}",'
                f'supabase_project_ref="{ref}"}} 12'
                for name in self.instances
            ),
            "# HELP supavisor_connections_active Active client connections.",
            "# TYPE supavisor_connections_active gauge",
            f'supavisor_connections_active{{service_type="pooler",supabase_project_ref="{ref}"}} 7',
        ]
        if self.repeat:
            # the real endpoint emits some families again further down
            lines += cpu_block
        return "\n".join(lines) + "\n"

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/customer/v1/privileged/metrics", self._metrics)

    async def _metrics(self, request: web.Request) -> web.Response:
        expected = base64.b64encode(f"service_role:{self.secret_key}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return web.json_response({"message": "Invalid API key"}, status=401)
        return web.Response(
            text=self.render(),
            content_type="text/plain",
            charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )
