#include "dist/comm.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace moe {

namespace {
// Every rank's values gathered, then added in rank order: the same bits everywhere.
template <typename T>
void ordered_sum(Comm& c, T* data, size_t n) {
  if (c.size() == 1) return;
  std::vector<T> all(n * size_t(c.size()));
  c.allgather(data, n * sizeof(T), all.data());
  for (size_t i = 0; i < n; i++) {
    T s = 0;
    for (int r = 0; r < c.size(); r++) s += all[size_t(r) * n + i];
    data[i] = s;
  }
}
}  // namespace

void Comm::allreduce_sum(double* data, size_t n) { ordered_sum(*this, data, n); }
void Comm::allreduce_sum(int64_t* data, size_t n) { ordered_sum(*this, data, n); }

namespace {

// One process: rank 0 of 1.
class LocalComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  bool is_mpi() const override { return false; }
  void allgather(const void* send, size_t bytes, void* recv) override {
    if (bytes && send != recv) std::memmove(recv, send, bytes);
  }
  void allgatherv(const void* send, void* recv, const std::vector<size_t>& counts) override {
    if (counts.at(0) && send != recv) std::memmove(recv, send, counts[0]);
  }
  void alltoallv(const void* send, const std::vector<size_t>& sc, void* recv, const std::vector<size_t>& rc) override {
    if (sc.at(0) != rc.at(0)) throw std::logic_error("alltoallv: send and receive counts differ on one rank");
    if (sc[0] && send != recv) std::memmove(recv, send, sc[0]);
  }
  void gatherv(const void* send, void* recv, const std::vector<size_t>& counts, int) override {
    if (counts.at(0) && send != recv) std::memmove(recv, send, counts[0]);
  }
  void broadcast(void*, size_t, int) override {}
  void barrier() override {}
  std::unique_ptr<Comm> split(int, int) override { return std::make_unique<LocalComm>(); }
};

}  // namespace

std::unique_ptr<Comm> comm_mpi_world();  // comm_mpi.cpp (null without MPI)

namespace {
int g_error_fd = 2;
}  // namespace

int comm_error_fd() { return g_error_fd; }

void comm_quiet_other_ranks(Comm& world) {
  if (world.size() < 2 || world.rank() == 0) return;
  std::fflush(stdout);
  std::fflush(stderr);
  g_error_fd = ::dup(2);
  const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (null < 0 || g_error_fd < 0) return;
  ::dup2(null, 1);
  ::dup2(null, 2);
  ::close(null);
}

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(v)) return true;
  return false;
}

Comm& comm_world() {
  static std::unique_ptr<Comm> world = []() -> std::unique_ptr<Comm> {
    if (launched_by_mpi()) {
      if (auto c = comm_mpi_world()) return c;
      std::fprintf(stderr, "moe: error: started by mpirun, but this moe was built without MPI "
                           "(install libopenmpi-dev and rebuild)\n");
      std::exit(1);
    }
    return std::make_unique<LocalComm>();
  }();
  return *world;
}

std::map<std::string, CommStats> comm_stats_sum(const std::vector<const Comm*>& comms) {
  std::map<std::string, CommStats> all;
  for (const Comm* c : comms)
    if (c)
      for (const auto& [kind, cs] : c->stats()) {
        CommStats& a = all[kind];
        a.bytes += cs.bytes, a.seconds += cs.seconds, a.calls += cs.calls;
      }
  return all;
}

}  // namespace moe
