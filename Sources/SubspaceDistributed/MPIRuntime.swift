import CMPI
import Synchronization

/// Return-code checking and type mapping for the MPI calls this module makes.
enum MPIRuntime {
    /// Throws an `.mpi` error carrying `call` and `MPI_Error_string`'s text unless `code` is success.
    @inline(__always)
    static func check(_ code: Int32, _ call: String, _ context: CollectiveContext) throws(CommunicatorError) {
        guard code != subspace_mpi_success else { return }
        throw context.error(.mpi(call: call, code: code, message: errorString(code)))
    }

    static func errorString(_ code: Int32) -> String {
        var text = [CChar](repeating: 0, count: Int(subspace_mpi_max_error_string) + 1)
        var length: Int32 = 0
        guard MPI_Error_string(code, &text, &length) == subspace_mpi_success else {
            return "unknown MPI error \(code)"
        }
        return String(decoding: text.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func datatype(_ kind: CollectiveElementKind) -> MPI_Datatype {
        switch kind {
        case .float32: subspace_mpi_float()
        case .float64: subspace_mpi_double()
        case .int32: subspace_mpi_int32()
        case .int64: subspace_mpi_int64()
        case .uint8: subspace_mpi_uint8()
        }
    }

    /// The MPI operation for `op` on elements of `kind`.
    static func op(_ op: ReduceOp, _ kind: CollectiveElementKind) -> MPI_Op {
        switch op {
        case .sum:
            if kind == .uint8, let wrapping = wrappingByteSum.withLock({ $0 }) { return wrapping.op }
            return subspace_mpi_op_sum()
        case .max: return subspace_mpi_op_max()
        case .min: return subspace_mpi_op_min()
        }
    }

    /// A user-defined wrapping sum for bytes. Open MPI 4.1's AVX reduction component adds 8-bit integers
    /// with saturating instructions (255 + 2 = 255; open-mpi/ompi#8045, closed as won't-fix), whereas C,
    /// the in-process communicator and the shared-memory path wrap. Created by `MPIEnvironment`.
    static let wrappingByteSum = Mutex<MPIOpHandle?>(nil)

    static func createWrappingByteSum(_ context: CollectiveContext) throws(CommunicatorError) {
        var op: MPI_Op? = nil
        try check(MPI_Op_create(wrappingByteSumFunction, 1, &op), "MPI_Op_create", context)
        guard let op else { throw context.invalid("MPI_Op_create returned no operation") }
        wrappingByteSum.withLock { $0 = MPIOpHandle(op) }
    }

    static func freeWrappingByteSum(_ context: CollectiveContext) throws(CommunicatorError) {
        guard let handle = wrappingByteSum.withLock({ current in
            defer { current = nil }
            return current
        }) else { return }
        var op: MPI_Op? = handle.op
        try check(MPI_Op_free(&op), "MPI_Op_free", context)
    }

    /// MPI counts and displacements are C `int`s.
    static func int32(_ value: Int, _ what: String, _ context: CollectiveContext) throws(CommunicatorError)
        -> Int32
    {
        guard let narrow = Int32(exactly: value) else {
            throw context.invalid("\(what) \(value) exceeds MPI's 32-bit count limit")
        }
        return narrow
    }

    /// Set by `MPIEnvironment.finalize()`; collectives check it before calling MPI.
    static let isFinalized = Atomic<Bool>(false)

    /// The largest element count passed to one MPI call when a contiguous buffer is split into pieces.
    static let maximumCount = 1 << 30
}

/// An MPI communicator handle.
///
/// `@unchecked Sendable`: `MPI_Comm` imports as `OpaquePointer`, which is not `Sendable`. The handle is
/// immutable after creation, and concurrent use of MPI is governed by the thread level MPI provided,
/// not by Swift.
final class MPICommHandle: @unchecked Sendable {
    let comm: MPI_Comm

    init(_ comm: MPI_Comm) {
        self.comm = comm
    }
}

/// An MPI operation handle. `@unchecked Sendable` for the same reason as `MPICommHandle`.
final class MPIOpHandle: @unchecked Sendable {
    let op: MPI_Op

    init(_ op: MPI_Op) {
        self.op = op
    }
}

/// `inout[i] = in[i] &+ inout[i]` for bytes (an `MPI_User_function`).
private func wrappingByteSumFunction(
    _ input: UnsafeMutableRawPointer?, _ accumulator: UnsafeMutableRawPointer?, _ length: UnsafeMutablePointer<Int32>?,
    _ type: UnsafeMutablePointer<MPI_Datatype?>?
) {
    guard let input, let accumulator, let length else { return }
    ReductionKernels.accumulate(
        UnsafeRawPointer(input), into: accumulator, count: Int(length.pointee), kind: .uint8, op: .sum)
}
