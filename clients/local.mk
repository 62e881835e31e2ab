# Real-client checks: memcached, redis-server, python3 and sqlite3 from
# Debian's packages run with libtlmalloc.so preloaded, driven on 127.0.0.1
# only, and verified (clients/README.md).  Not part of `make check`.
#   make check-clients                 checks under libtlmalloc.so
#   make bench-clients                 throughput and peak RSS under no
#                                      preload, tlmalloc and jemalloc,
#                                      written to clients/results.md
#   make check-clients CLIENTS_FLAGS="--only redis,sqlite"
EXTRA_DIST += clients/README.md clients/run.sh clients/mc_client.py \
	clients/redis_client.py clients/py_workload.py clients/sqlite_workload.sql \
	clients/results.md

CLIENTS_LIB = $(abs_builddir)/.libs/libtlmalloc.so
CLIENTS_FLAGS =

check-clients: libtlmalloc.la
	bash $(srcdir)/clients/run.sh $(CLIENTS_FLAGS) $(CLIENTS_LIB)

bench-clients: libtlmalloc.la
	bash $(srcdir)/clients/run.sh --compare --results $(srcdir)/clients/results.md \
		$(CLIENTS_FLAGS) $(CLIENTS_LIB)

.PHONY: check-clients bench-clients
