# Two commands set everything up from scratch on Debian 12 / Python 3.11: `make demo` and `make test`.
# Each step leaves a stamp, so re-running is quick when nothing changed.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BUILD := build
# ROS 2 traffic stays on this machine unless the caller says otherwise.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
PKG_FILES := $(shell find depth_panoptic_ros scripts launch config models -type f -not -path '*/__pycache__/*' 2>/dev/null)

.PHONY: setup test demo lint clean

setup: $(BUILD)/.installed

$(VENV)/.deps: requirements.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

# Messages: rosidl into the venv prefix; sources installed as symlinks so that edits are live. The entry
# scripts are configured (shebang) at build time, so a changed script needs a build too.
$(BUILD)/.msgs: $(VENV)/.deps CMakeLists.txt package.xml $(wildcard msg/*.msg) $(wildcard scripts/*)
	@mkdir -p $(BUILD)
	VIRTUAL_ENV=$(abspath $(VENV)) cmake -S . -B $(BUILD) -G Ninja -Wno-dev \
	  -DCMAKE_PREFIX_PATH=$(abspath $(VENV)) -DCMAKE_INSTALL_PREFIX=$(abspath $(VENV)) \
	  -DPython3_EXECUTABLE=$(abspath $(PY)) -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release \
	  -DAMENT_CMAKE_SYMLINK_INSTALL=ON > $(BUILD)/configure.log || (cat $(BUILD)/configure.log; exit 1)
	cmake --build $(BUILD) -j2 > $(BUILD)/build.log || (cat $(BUILD)/build.log; exit 1)
	@touch $@

# A new or removed file needs a new install (symlinks are per file).
$(BUILD)/.installed: $(BUILD)/.msgs $(PKG_FILES)
	cd $(BUILD) && cmake --install . > install.log || (cat install.log; exit 1)
	@touch $@

test: setup lint
	$(PY) -m pytest

lint: $(VENV)/.deps
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Node and player share the Fast DDS profile for full-size sensor messages (docs/node.md, "Large sensor messages").
demo: setup
	FASTDDS_DEFAULT_PROFILES_FILE=$(CURDIR)/config/fastdds_large_data.xml $(VENV)/bin/depth-panoptic demo --out out/demo

clean:
	rm -rf $(BUILD) out
