import CBLAS
import CDNNL
import Foundation

/// Matrix products with bf16 inputs and fp32 accumulation and output — what PyTorch's CPU autocast runs
/// linear layers on — through oneDNN (`dnnl_gemm_bf16bf16f32`, its AVX-512 BF16 / AMX kernels).
///
/// Only CPUs whose oneDNN ISA includes `avx512_core_bf16` (AVX-512 BF16, or AMX) run it fast; elsewhere
/// oneDNN has no bf16 kernel at all, and `BF16GEMM.require()` throws a message saying so, so that a run
/// asking for bf16 stops at start-up rather than emulating slowly. `Backend.emulated` (chosen only
/// explicitly: tests, or `SUBSPACE_BF16_EMULATE=1`) gives the same numbers on any CPU — bf16 operands
/// widened to fp32 (exact) and multiplied by OpenBLAS `sgemm`, so only the summation order differs — for
/// checking numerics where the hardware is absent; it is slower than fp32, never faster.
///
/// Threads: oneDNN runs on OpenMP; `threadCount` (set by the model's `Parallel.configure` from the rank's
/// `ThreadPolicy`, like the BLAS threads) is applied on the calling thread before each product, since
/// OpenMP's thread count is a per-thread setting. Call it from one thread at a time.
public enum BF16GEMM {
    public enum Backend: String, Sendable, CaseIterable {
        /// `dnnl_gemm_bf16bf16f32`.
        case oneDNN = "onednn"
        /// bf16 operands widened to fp32, OpenBLAS `sgemm` (tests; CPUs without bf16).
        case emulated
    }

    /// What this CPU offers for bf16 products, found once.
    public struct Support: Sendable {
        /// oneDNN's best instruction set here (e.g. `avx512_core_bf16`, `avx2`).
        public let isa: String
        /// Whether oneDNN runs bf16 products in hardware.
        public let available: Bool
        /// Whether /proc/cpuinfo lists `avx512_bf16` or `amx_bf16` (nil where unknown).
        public let cpuinfoFlag: Bool?
    }

    /// The CPU's bf16 support (oneDNN's ISA query plus a 1×1 product that must succeed).
    public static let support: Support = {
        let isa = dnnl_get_effective_cpu_isa()
        let name = String(cString: dnnl_cpu_isa2str(isa)).replacingOccurrences(of: "cpu_isa_", with: "")
        let bf16 = dnnl_cpu_isa_avx512_core_bf16.rawValue
        var works = false
        if isa.rawValue & bf16 == bf16 {
            var a: UInt16 = 0x3F80, b: UInt16 = 0x4000, c: Float = 0
            works = dnnl_gemm_bf16bf16f32(CChar(UInt8(ascii: "N")), CChar(UInt8(ascii: "N")), 1, 1, 1, 1, &a, 1, &b, 1, 0, &c, 1)
                == dnnl_success && c == 2
        }
        var flag: Bool? = nil
        if let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) {
            let flags = Set(line.split(separator: " ").map(String.init))
            flag = flags.contains("avx512_bf16") || flags.contains("amx_bf16")
        }
        return Support(isa: name, available: works, cpuinfoFlag: flag)
    }()

    /// The kernel `gemm` runs: oneDNN unless chosen otherwise (`require` picks it from the environment).
    nonisolated(unsafe) public static var backend: Backend = .oneDNN
    /// OpenMP threads of oneDNN's products.
    nonisolated(unsafe) public static var threadCount = 1

    /// Makes sure bf16 products can run here, choosing the backend: oneDNN where the CPU has bf16
    /// instructions; `emulated` where `SUBSPACE_BF16_EMULATE=1` asks for it; otherwise throws, naming
    /// the setting that asked for bf16 (`what`, e.g. "training.precision bf16").
    @discardableResult
    public static func require(
        _ what: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> Backend {
        if environment["SUBSPACE_BF16_EMULATE"] == "1" { backend = .emulated; return .emulated }
        if support.available { backend = .oneDNN; return .oneDNN }
        throw BF16Unavailable(setting: what, support: support)
    }

    /// C ← alpha · op(A) · op(B) + beta · C, row-major; A, B bf16, C fp32. op(A) is [m, k], op(B) is [k, n].
    /// `kernel`: the backend to run (nil: `backend`); a model passes the one it was set to bf16 with.
    public static func gemm(
        _ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<UInt16>, lda: Int, b: UnsafePointer<UInt16>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, using kernel: Backend? = nil
    ) {
        precondition(m >= 0 && n >= 0 && k >= 0, "bf16 gemm with negative size m=\(m) n=\(n) k=\(k)")
        precondition(lda >= max(1, transA == .none ? k : m), "bf16 gemm: lda \(lda) too small")
        precondition(ldb >= max(1, transB == .none ? n : k), "bf16 gemm: ldb \(ldb) too small")
        precondition(ldc >= max(1, n), "bf16 gemm: ldc \(ldc) too small")
        if m == 0 || n == 0 { return }
        switch kernel ?? backend {
        case .oneDNN:
            omp_set_num_threads(Int32(max(1, threadCount)))
            let status = dnnl_gemm_bf16bf16f32(transA.dnnl, transB.dnnl, Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda), b, Int64(ldb),
                                               beta, c, Int64(ldc))
            // Sizes and strides are checked above; oneDNN fails only where `require` would have refused.
            precondition(status == dnnl_success,
                         "dnnl_gemm_bf16bf16f32 failed (status \(status.rawValue)) for m=\(m) n=\(n) k=\(k); oneDNN ISA \(support.isa)")
        case .emulated:
            emulatedGEMM(transA, transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        }
    }

    /// bf16 operands widened to fp32 (exact), then OpenBLAS sgemm: the products are the same as oneDNN's,
    /// only the order of the fp32 sums may differ.
    static func emulatedGEMM(
        _ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<UInt16>, lda: Int, b: UnsafePointer<UInt16>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let (rowsA, rowsB) = (transA == .none ? m : k, transB == .none ? k : n)
        let wideA = UnsafeMutablePointer<Float>.allocate(capacity: rowsA * lda)
        let wideB = UnsafeMutablePointer<Float>.allocate(capacity: rowsB * ldb)
        defer { wideA.deallocate(); wideB.deallocate() }
        // Only the rows the product reads; padding beyond each row's width is never read by sgemm.
        BFloat16.expand(a, to: wideA, count: (rowsA - 1) * lda + (transA == .none ? k : m))
        BFloat16.expand(b, to: wideB, count: (rowsB - 1) * ldb + (transB == .none ? n : k))
        BLAS.gemm(transA, transB, m: m, n: n, k: k, alpha: alpha, a: wideA, lda: lda, b: wideB, ldb: ldb,
                  beta: beta, c: c, ldc: ldc)
    }
}

/// bf16 was asked for on a CPU without bf16 instructions.
public struct BF16Unavailable: Error, CustomStringConvertible {
    public let setting: String
    public let support: BF16GEMM.Support

    public var description: String {
        let flag = switch support.cpuinfoFlag {
        case true?: "; /proc/cpuinfo lists avx512_bf16, so this oneDNN build or the OS does not enable it"
        case false?: "; /proc/cpuinfo lists neither avx512_bf16 nor amx_bf16"
        case nil: ""
        }
        return "\(setting): bf16 products need a CPU with AVX-512 BF16 or AMX (oneDNN's avx512_core_bf16 or better); "
            + "this CPU's best oneDNN instruction set is \(support.isa)\(flag). Use fp32 here. "
            + "(SUBSPACE_BF16_EMULATE=1 runs the bf16 numerics through fp32 products, for testing only: it is slower than fp32.)"
    }
}

extension Transpose {
    var dnnl: CChar { CChar(UInt8(ascii: self == .none ? "N" : "T")) }
}
