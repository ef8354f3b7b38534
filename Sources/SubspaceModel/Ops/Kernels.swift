import Foundation
import SubspaceCore

/// Pointer aliases used by every kernel. Kernels take outputs first, then inputs, then sizes (llm.c's
/// order), document each buffer's shape, and *accumulate* into gradients (`+=`): gradients are zeroed
/// once per step by the caller.
public typealias FloatPointer = UnsafeMutablePointer<Float>
public typealias ConstFloatPointer = UnsafePointer<Float>

/// Splits row-parallel elementwise work over the cores this rank may use.
public enum Parallel {
    /// Worker count for elementwise kernels; set once per process (the executable sets it from the
    /// same policy as the BLAS threads).
    nonisolated(unsafe) public static var workers = 1

    /// Sets up a process to run the model on `threads` cores: kernels (and `ParallelGEMM`) split their
    /// work over `threads` workers, and BLAS runs single-threaded inside each.
    public static func configure(threads: Int) {
        workers = max(1, threads)
        BLAS.threadCount = 1
        // oneDNN's bf16 products are called from one thread and run its own OpenMP team of this size.
        BF16GEMM.threadCount = workers
    }

    /// Calls `body(range)` on disjoint chunks of 0..<count, in parallel when that pays.
    public static func rows(_ count: Int, minimumPerChunk: Int = 64, _ body: (Range<Int>) -> Void) {
        let chunks = min(workers, max(1, count / max(minimumPerChunk, 1)))
        self.chunks(count, chunks: chunks) { _, range in body(range) }
    }

    /// Calls `body(chunk, range)` for `chunks` disjoint, balanced ranges of 0..<count, concurrently.
    /// Kernels pass raw pointers into the closure and write disjoint parts of their outputs, which is
    /// why the closure need not be Sendable: `concurrentPerform` returns only when every chunk is done.
    public static func chunks(_ count: Int, chunks: Int, _ body: (Int, Range<Int>) -> Void) {
        let chunks = max(1, min(chunks, count))
        if chunks <= 1 { body(0, 0..<count); return }
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                shared.value(c, (count * c / chunks)..<(count * (c + 1) / chunks))
            }
        }
    }
}

/// Carries a value into a concurrent closure whose synchronisation the caller guarantees.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
