"""
Coverage-guided fuzzing of the XML streams with atheris (libFuzzer).

The drivers and the invariants are those of L{tests.test_fuzz_stream}: the
receiving side (XEP-0225 with the router's bind and routing), the XEP-0114
side, and the initiating side, each on a fake transport and clock, run
past every timeout. A crash is an exception out of C{dataReceived}, an
error logged, a broken invariant (L{FuzzCrash}), or libFuzzer's own
limits (memory, time per input).

Run from the repository root; see fuzz/README.md.
"""

import os
import resource
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

with atheris.instrument_imports(include=["xmppcomp", "twisted.words"]):
    from twisted.logger import globalLogBeginner

    from tests import test_fuzz_stream as drivers

_failures: list = []
_count = [0]



def _observer(event: dict) -> None:
    if event.get("log_failure") is not None or event.get("isError"):
        _failures.append(event)


globalLogBeginner.beginLoggingTo([_observer], redirectStandardIO=False)


def _input(data: bytes) -> tuple:
    fdp = atheris.FuzzedDataProvider(data)
    side = drivers.SIDES[fdp.ConsumeIntInRange(0, len(drivers.SIDES) - 1)]
    flights = drivers.TRANSCRIPTS[side]
    mode = fdp.ConsumeIntInRange(0, 2)
    if mode == 0:
        ops = [
            (
                fdp.ConsumeIntInRange(0, 8),
                fdp.ConsumeIntInRange(0, 7),
                fdp.ConsumeIntInRange(0, 4096),
                fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 16)),
            )
            for _ in range(fdp.ConsumeIntInRange(0, 8))
        ]
        cuts = fdp.ConsumeIntListInRange(fdp.ConsumeIntInRange(0, 12), 0, 4096)
        return side, drivers.split(drivers.mutate(flights, ops), cuts)
    keep = fdp.ConsumeIntInRange(0, len(flights) - 1)
    cuts = fdp.ConsumeIntListInRange(fdp.ConsumeIntInRange(0, 8), 0, 4096)
    rest = fdp.ConsumeBytes(fdp.remaining_bytes())
    if mode == 1:
        return side, list(flights[:keep]) + drivers.split([rest], cuts)
    return side, drivers.split([rest], cuts)


def testOneInput(data: bytes) -> None:
    side, chunks = _input(data)
    drivers.run(side, chunks)
    _count[0] += 1
    if _failures:
        event = _failures[0]
        failure = event.get("log_failure")
        raise drivers.FuzzCrash(
            "logged an error on %s: %s %s"
            % (side, event.get("log_format"), failure.getTraceback() if failure else event)
        )
    if _count[0] % 20000 == 0:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(
            "#fuzz_stream inputs=%d maxrss=%d KiB" % (_count[0], rss),
            file=sys.stderr,
            flush=True,
        )


def main() -> None:
    atheris.Setup(sys.argv, testOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
