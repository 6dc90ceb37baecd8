.PHONY: run test lint bench

run:  ## install what is needed, then run the API (:8000) and the dashboard (:8501)
	@scripts/run.sh

test:  ## install what is needed, then lint and run the whole test suite
	@scripts/test.sh

lint:
	@scripts/bootstrap.sh && .venv/bin/ruff check . && .venv/bin/ruff format --check .

bench:  ## benchmarks that print figures: processing engine, then the request path (BENCH_ARGS=--quick)
	@scripts/bootstrap.sh && scripts/ensure-services.sh && .venv/bin/python -m bench.processing \
		&& .venv/bin/python -m bench.request_path $(BENCH_ARGS)
