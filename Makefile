# The README's two commands. Each one installs what it needs into ./.venv first.
VENV ?= .venv
PROMPT ?= a red circle moving right on a black background

.PHONY: demo test test-slow lint

demo:  ## install, then make a video with the built-in model
	scripts/install.sh
	$(VENV)/bin/vidora generate "$(PROMPT)" -o out/demo.mp4

test:  ## install with the test tools, then run the test suite
	scripts/install.sh dev
	scripts/test.sh

test-slow:  ## the slow tests too (they train, or run the built-in model)
	scripts/install.sh dev
	scripts/test.sh -m "slow or not slow"

lint:
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
