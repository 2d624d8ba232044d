"""Real threads for the concurrency tests: each runs on its own database connection."""

import threading

from django.db import connection


def run_concurrently(*functions, timeout: float = 60):
    """Start every function at the same moment (barrier) in its own thread; return their results in order."""
    barrier = threading.Barrier(len(functions))
    results, errors = [None] * len(functions), []

    def runner(index, function):
        try:
            barrier.wait(timeout=timeout)
            results[index] = function()
        except BaseException as error:  # reported to the test below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(i, f)) for i, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results
