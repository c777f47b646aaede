# anyref_ros: the two commands of the README, and the set-up they share.
#   make demo   install what is missing, then run the demo on the embedded model
#   make test   install what is missing, then run the tests
#   make setup  only install (idempotent; a second run takes seconds)
#   JAVA=1      also install a Java runtime (default-jre-headless) for METEOR in anyref-eval

ARGS ?=
JAVA ?=

.PHONY: setup test demo clean

setup:
	@JAVA=$(JAVA) bash scripts/setup.sh

test: setup
	@bash scripts/test.sh $(ARGS)

demo: setup
	@bash scripts/demo.sh $(ARGS)

clean:
	rm -rf build .pytest_cache
