// The MPI communicator (Open MPI). Built when CMake finds MPI (MOE_HAVE_MPI);
// otherwise comm_mpi_world() returns null and mpirun is refused with a clear error.
#include "dist/comm.h"

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include <unistd.h>

#ifdef MOE_HAVE_MPI
#include <mpi.h>
#endif

namespace moe {

#ifdef MOE_HAVE_MPI
namespace {

using Clock = std::chrono::steady_clock;

// Counts and displacements in MPI's int, in bytes; refuses what does not fit.
void to_int_counts(const std::vector<size_t>& c, std::vector<int>& counts, std::vector<int>& displs) {
  counts.resize(c.size()), displs.resize(c.size());
  size_t off = 0;
  for (size_t i = 0; i < c.size(); i++) {
    if (c[i] > size_t(INT_MAX) || off > size_t(INT_MAX))
      throw std::runtime_error("MPI message larger than 2 GiB: split it (moe buckets its collectives)");
    counts[i] = int(c[i]), displs[i] = int(off);
    off += c[i];
  }
}

class MpiComm final : public Comm {
 public:
  MpiComm(MPI_Comm c, bool owned) : c_(c), owned_(owned) {
    MPI_Comm_rank(c_, &rank_);
    MPI_Comm_size(c_, &size_);
  }
  ~MpiComm() override {
    if (owned_) MPI_Comm_free(&c_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool is_mpi() const override { return true; }

  void allgather(const void* send, size_t bytes, void* recv) override {
    Timer t(stats_["allgather"], bytes * size_t(size_ - 1));
    check(MPI_Allgather(send, int(bytes), MPI_BYTE, recv, int(bytes), MPI_BYTE, c_));
  }
  void allgatherv(const void* send, void* recv, const std::vector<size_t>& c) override {
    std::vector<int> counts, displs;
    to_int_counts(c, counts, displs);
    size_t total = 0;
    for (size_t x : c) total += x;
    Timer t(stats_["allgather"], total - c[size_t(rank_)]);
    check(MPI_Allgatherv(send, counts[size_t(rank_)], MPI_BYTE, recv, counts.data(), displs.data(), MPI_BYTE, c_));
  }
  void alltoallv(const void* send, const std::vector<size_t>& sc, void* recv, const std::vector<size_t>& rc) override {
    std::vector<int> scounts, sdispls, rcounts, rdispls;
    to_int_counts(sc, scounts, sdispls);
    to_int_counts(rc, rcounts, rdispls);
    size_t moved = 0;
    for (int r = 0; r < size_; r++)
      if (r != rank_) moved += sc[size_t(r)];
    Timer t(stats_["alltoallv"], moved);
    check(MPI_Alltoallv(send, scounts.data(), sdispls.data(), MPI_BYTE, recv, rcounts.data(), rdispls.data(), MPI_BYTE,
                        c_));
  }
  void gatherv(const void* send, void* recv, const std::vector<size_t>& c, int root) override {
    std::vector<int> counts, displs;
    to_int_counts(c, counts, displs);
    Timer t(stats_["gather"], rank_ == root ? 0 : c[size_t(rank_)]);
    check(MPI_Gatherv(send, counts[size_t(rank_)], MPI_BYTE, recv, counts.data(), displs.data(), MPI_BYTE, root, c_));
  }
  void broadcast(void* data, size_t bytes, int root) override {
    Timer t(stats_["broadcast"], rank_ == root ? bytes * size_t(size_ - 1) : 0);
    if (bytes > size_t(INT_MAX)) throw std::runtime_error("MPI broadcast larger than 2 GiB");
    check(MPI_Bcast(data, int(bytes), MPI_BYTE, root, c_));
  }
  void barrier() override { check(MPI_Barrier(c_)); }
  std::unique_ptr<Comm> split(int color, int key) override {
    MPI_Comm n;
    check(MPI_Comm_split(c_, color, key, &n));
    return std::make_unique<MpiComm>(n, true);
  }

 private:
  struct Timer {
    CommStats& s;
    Clock::time_point t0 = Clock::now();
    Timer(CommStats& st, size_t bytes) : s(st) {
      s.bytes += double(bytes);
      s.calls++;
    }
    ~Timer() { s.seconds += std::chrono::duration<double>(Clock::now() - t0).count(); }
  };
  void check(int rc) {
    if (rc != MPI_SUCCESS) comm_fail("MPI call failed (error " + std::to_string(rc) + ")", 1);
  }
  MPI_Comm c_;
  bool owned_;
  int rank_ = 0, size_ = 1;
};

void finalize_at_exit() {
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin) MPI_Finalize();
}

}  // namespace

bool mpi_available() { return true; }

std::unique_ptr<Comm> comm_mpi_world() {
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    std::atexit(finalize_at_exit);
  }
  // Errors in collectives come back as codes (then comm_fail aborts every rank).
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  return std::make_unique<MpiComm>(MPI_COMM_WORLD, false);
}

void comm_fail(const std::string& line, int code) {
  int inited = 0, fin = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&fin);
  if (inited && !fin) {
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size > 1) {
      const std::string msg = "moe: rank " + std::to_string(rank) + " of " + std::to_string(size) + ": " + line + "\n";
      if (::write(comm_error_fd(), msg.data(), msg.size()) < 0) {
      }
      MPI_Abort(MPI_COMM_WORLD, code);
    }
  }
  const std::string msg = "moe: " + line + "\n";
  if (::write(comm_error_fd(), msg.data(), msg.size()) < 0) {
  }
  std::exit(code);
}

#else

bool mpi_available() { return false; }
std::unique_ptr<Comm> comm_mpi_world() { return nullptr; }
void comm_fail(const std::string& line, int code) {
  const std::string msg = "moe: " + line + "\n";
  if (::write(comm_error_fd(), msg.data(), msg.size()) < 0) {
  }
  std::exit(code);
}

#endif

}  // namespace moe
