# One set of habits: CI (.ci/run) calls `make test`, the README's test command.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
VERL_VENV ?= $(VENV)-verl

.PHONY: install base sim-side system grpo-side grpo grpo-results test lint format typecheck pytest bench bench-service demo simulate results calibrate serve proto clean

## install: everything the tests need (the coordinator, its test tools, the trainer side, Debian
## packages). The main job's targets install only what they run: serve and bench
## need the coordinator alone (base); demo, simulate, results, calibrate and grpo add the plots and
## the Parquet reader (sim-side). Neither holds pytest, hypothesis, schemathesis, selenium, ...
install: $(VENV)/.trainer-side $(VERL_VENV)/.installed system
base: $(VENV)/.installed
sim-side: $(VENV)/.sim

## system: the Debian packages the tests use, where missing: redis-server, prometheus (the server
## and promtool), chromium and chromium-driver (the dashboard page's browser tests), openssl (the
## TLS tests' certificates)
SYSTEM_PACKAGES := redis-server:redis-server prometheus:prometheus promtool:prometheus \
                   chromium:chromium chromedriver:chromium-driver wget:wget openssl:openssl
system:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends $$missing; }; fi
	@for pair in $(SYSTEM_PACKAGES); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || { echo "$${pair%%:*} is missing"; exit 1; }; done

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.sim: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[sim]'
	touch $@

$(VENV)/.test-deps: $(VENV)/.sim
	$(BIN)/python -m pip install --quiet -e '.[test,sim]'
	# the Compose Specification's JSON schema, as docker-compose's last Python release ships it
	# (tests/test_compose.py); its own dependencies are not needed
	$(BIN)/python -m pip install --quiet --no-deps docker-compose==1.29.2
	touch $@

## The trainer side, for the integration tests (tests/test_trainer_*.py, tests/test_rollout_*.py):
## the CPU build of torch, OpenRLHF 0.11.2's CPU-capable stack (services/trainer/requirements-cpu.txt),
## deepspeed without its CUDA ops, OpenRLHF itself without ray/vllm/flash-attn, math-verify, TRL
## 1.16.0 (its requirements are met by the stack above: transformers 5.15.0 included), and the three
## integration packages and the GRPO benchmark (cdas-grpo). The coordinator's own install
## (pip install .) holds none of it.
TRAINER_SIDE := services/trainer/pyproject.toml services/trainer/requirements-cpu.txt \
                services/rollout/pyproject.toml services/trl/pyproject.toml \
                services/grpo/pyproject.toml
$(VENV)/.trainer-side: $(VENV)/.test-deps $(TRAINER_SIDE)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -r services/trainer/requirements-cpu.txt
	DS_BUILD_OPS=0 $(BIN)/python -m pip install --quiet --no-build-isolation deepspeed==0.19.6
	$(BIN)/python -m pip install --quiet --no-deps openrlhf==0.11.2
	$(BIN)/python -m pip install --quiet -e services/rollout -e services/trainer --no-deps
	$(BIN)/python -m pip install --quiet 'math-verify[antlr4_13_2]'
	$(BIN)/python -m pip install --quiet trl==1.16.0
	$(BIN)/python -m pip install --quiet -e services/trl -e services/grpo --no-deps
	touch $@

## The verl side, for tests/test_verl_*.py: verl 0.7.1 (the last release with the curriculum-sampler
## hook cdas-verl plugs into) in a venv of its own, layered on the trainer side's (a .pth file adds
## its site-packages after this one's): verl's Hydra config needs antlr4 4.9, math-verify 4.13.2.
## Installed without verl's pins (numpy<2, ray, wandb, ...): only what its imported modules need
## on a CPU; the tests stand in for ray.
$(VERL_VENV)/.installed: $(VENV)/.trainer-side services/verl/pyproject.toml
	$(PYTHON) -m venv $(VERL_VENV)
	$(BIN)/python -c 'import sysconfig; print("import site; site.addsitedir(%r)" % sysconfig.get_paths()["purelib"])' \
	  > "$$($(VERL_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/trainer_side.pth"
	$(VERL_VENV)/bin/python -m pip install --quiet --no-deps verl==0.7.1 tensordict==0.10.0 \
	  hydra-core==1.3.2 omegaconf==2.3.0 antlr4-python3-runtime==4.9.3 codetiming==1.4.0 \
	  'pyvers<0.2.0,>=0.1.0' orjson cloudpickle importlib_metadata
	$(VERL_VENV)/bin/python -m pip install --quiet --no-deps -e services/verl
	touch $@

## test: install what the tests need, then lint, type-check and run the whole suite
test: install lint typecheck pytest

pytest: install
	$(BIN)/pytest --ignore-glob='tests/test_verl_*'
	$(VERL_VENV)/bin/python -m pytest tests/test_verl_*.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint services/coordinator/Dockerfile services/trainer/Dockerfile services/rollout/Dockerfile \
	  services/verl/Dockerfile

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy

## bench: the core benchmark (CDAS step against the authors'-style naive implementation)
bench: base
	$(BIN)/cdas bench core

## bench-service: full steps over REST and gRPC on Redis, against the library (issue 4 targets)
bench-service: base system
	$(BIN)/cdas bench service

## proto: regenerate services/coordinator/cdas/v1/ from proto/ (a test fails when it is stale)
proto: $(VENV)/.test-deps
	$(BIN)/python proto/generate.py

## serve: the coordinator service (REST :8000, gRPC :50051) on the embedded store
serve: base
	$(BIN)/cdas serve

## demo: the main job on the embedded store (serves until Ctrl-C; `make demo ARGS=--exit` stops)
demo: sim-side
	$(BIN)/cdas demo $(ARGS)

## simulate: every strategy on the training twin, 3 seeds (plots and tables in sim-out/)
simulate: sim-side
	$(BIN)/cdas simulate --out sim-out

## results: regenerate docs/results.md and its plots (docs/results/) from the committed command:
## every strategy and CDAS variant on the twin, and the twin validated on the committed real GRPO
## run (docs/grpo, from `make grpo-results`)
RESULTS_ARMS := cdas,random,prioritized,curriculum,dynamic,mopps,learnability,cdas-retire,cdas-fast,cdas-retire-fast,cdas-mix
results: sim-side
	$(BIN)/cdas simulate --strategies $(RESULTS_ARMS) --steps 110 --seeds 3 --out docs/results \
		--page docs/results.md --real-run docs/grpo

## grpo-side: the GRPO benchmark on top of the main job's install: the CPU build of torch and
## cdas-grpo (services/grpo), which adds `cdas grpo`
grpo-side: $(VENV)/.grpo-side
$(VENV)/.grpo-side: $(VENV)/.sim services/grpo/pyproject.toml
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet --no-deps -e services/grpo
	touch $@

## grpo: real GRPO on this machine, cdas/random/prioritized/dynamic x 2 seeds (about 15 min on 2
## CPU cores; plots and tables in grpo-out/)
grpo: grpo-side
	$(BIN)/cdas grpo --out grpo-out $(ARGS)

## grpo-results: regenerate docs/grpo.md and its plots (docs/grpo/) from the committed command:
## the four strategies and the four named CDAS variants (cdas/sim/arms.py), 2 seeds each (about
## 14 min on 2 CPU cores)
GRPO_ARMS := cdas,random,prioritized,dynamic,cdas-retire,cdas-fast,cdas-retire-fast,cdas-mix
grpo-results: grpo-side
	$(BIN)/cdas grpo --strategies $(GRPO_ARMS) --out docs/grpo --page docs/grpo.md

## calibrate: refit the twin's free parameters to the paper's Random and Prioritized runs (prints them)
calibrate: sim-side
	$(BIN)/cdas calibrate

clean:
	rm -rf $(VENV) $(VERL_VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info services/coordinator/*.egg-info
