#ifndef SUBSPACE_CMPI_SHIM_H
#define SUBSPACE_CMPI_SHIM_H
#include <mpi.h>

// Open MPI's predefined handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_IN_PLACE, ...) are macros that
// take the address of globals of incomplete type, and Swift imports neither. Each is re-exported here as
// a static inline function with a `subspace_` prefix. Anonymous-enum constants are re-exported as `int`
// so Swift sees Int32 rather than Int.

static inline MPI_Comm subspace_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm subspace_mpi_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype subspace_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype subspace_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype subspace_mpi_int32(void) { return MPI_INT32_T; }
static inline MPI_Datatype subspace_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype subspace_mpi_uint8(void) { return MPI_UINT8_T; }
static inline MPI_Op subspace_mpi_op_sum(void) { return MPI_SUM; }
static inline MPI_Op subspace_mpi_op_max(void) { return MPI_MAX; }
static inline MPI_Op subspace_mpi_op_min(void) { return MPI_MIN; }
static inline void *subspace_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Status *subspace_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Info subspace_mpi_info_null(void) { return MPI_INFO_NULL; }
static inline MPI_Errhandler subspace_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Request subspace_mpi_request_null(void) { return MPI_REQUEST_NULL; }
// Shared-memory windows (MPI_Win_allocate_shared) for the intra-node all-reduce.
static inline MPI_Win subspace_mpi_win_null(void) { return MPI_WIN_NULL; }

static const int subspace_mpi_success = MPI_SUCCESS;
static const int subspace_mpi_undefined = MPI_UNDEFINED;
static const int subspace_mpi_comm_type_shared = MPI_COMM_TYPE_SHARED;
static const int subspace_mpi_thread_single = MPI_THREAD_SINGLE;
static const int subspace_mpi_thread_funneled = MPI_THREAD_FUNNELED;
static const int subspace_mpi_thread_serialized = MPI_THREAD_SERIALIZED;
static const int subspace_mpi_thread_multiple = MPI_THREAD_MULTIPLE;
static const int subspace_mpi_max_error_string = MPI_MAX_ERROR_STRING;
static const int subspace_mpi_max_processor_name = MPI_MAX_PROCESSOR_NAME;
// Assertion for MPI_Win_lock_all: no conflicting lock is ever taken, so no lock traffic is needed.
static const int subspace_mpi_mode_nocheck = MPI_MODE_NOCHECK;

#endif
