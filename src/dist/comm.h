// The communicator: a group of processes (ranks) and the few collectives moe needs,
// behind one small interface. Two implementations: one process (every collective is a
// copy or nothing), and MPI (Open MPI from Debian) when the binary runs under mpirun.
// Nothing above this file knows which one it has.
//
// Collectives move bytes; reductions are done by the caller in a fixed rank order
// (dist/reduce.h), so results are bit-identical from run to run and between the
// replicated and the sharded optimizer, whatever MPI's algorithms do.
//
// Every call on a communicator must be made by all of its ranks, in the same order.
// A failure inside a collective, or an error on one rank (Comm::fail), ends every rank:
// MPI_Abort, never a hang.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace moe {

// Bytes moved and seconds spent per kind of collective, for `moe bench train`.
struct CommStats {
  double bytes = 0, seconds = 0;
  long calls = 0;
};

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual bool is_mpi() const = 0;

  // recv (size() * bytes) = every rank's `bytes` bytes, in rank order.
  virtual void allgather(const void* send, size_t bytes, void* recv) = 0;
  // recv = rank 0's bytes, rank 1's, ... (counts[r] bytes from rank r), back to back.
  virtual void allgatherv(const void* send, void* recv, const std::vector<size_t>& counts) = 0;
  // send holds send_counts[r] bytes for rank r, back to back; recv receives
  // recv_counts[r] bytes from rank r, back to back. The counts must agree pairwise.
  virtual void alltoallv(const void* send, const std::vector<size_t>& send_counts, void* recv,
                         const std::vector<size_t>& recv_counts) = 0;
  // root's recv = rank 0's bytes, rank 1's, ... (counts[r] from rank r, `send` holding
  // this rank's counts[rank()] bytes); recv is not touched on other ranks.
  virtual void gatherv(const void* send, void* recv, const std::vector<size_t>& counts, int root) = 0;
  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  virtual void barrier() = 0;
  // The ranks with the same color, ordered by key (MPI_Comm_split).
  virtual std::unique_ptr<Comm> split(int color, int key) = 0;

  // Sums in rank order (allgather, then add): the same bits on every rank and every run.
  void allreduce_sum(double* data, size_t n);
  void allreduce_sum(int64_t* data, size_t n);

  // Per kind of collective ("allgather", "alltoallv", ...), since the last reset.
  const std::map<std::string, CommStats>& stats() const { return stats_; }
  void reset_stats() { stats_.clear(); }

 protected:
  std::map<std::string, CommStats> stats_;
};

// Per kind of collective, the sum over several communicators' stats (null ones skipped).
std::map<std::string, CommStats> comm_stats_sum(const std::vector<const Comm*>& comms);

// The process's world: MPI_COMM_WORLD when started by mpirun (MPI initialised on first
// use, finalised at exit), else a one-process communicator.
Comm& comm_world();
// True when this process was started by an MPI launcher (OMPI_COMM_WORLD_SIZE, PMI_SIZE...).
bool launched_by_mpi();
// True when this binary was built with MPI.
bool mpi_available();

// Ends every rank of the job: prints "moe: <line>" ("moe: rank r of P: <line>" when
// P > 1) on the process's real stderr and exits with `code` (MPI_Abort under MPI).
[[noreturn]] void comm_fail(const std::string& line, int code);
// Ranks other than 0 of `world` send their stdout and stderr to /dev/null (the lines
// of one run, not P copies); comm_fail still prints on the real stderr.
void comm_quiet_other_ranks(Comm& world);
int comm_error_fd();  // where comm_fail writes: the real stderr

}  // namespace moe
