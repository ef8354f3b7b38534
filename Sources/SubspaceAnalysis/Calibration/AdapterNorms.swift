import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceModel

/// The seed's verification figures of one adapted module on a calibration set, with its letters:
/// X the module's input, B the down-projection (PEFT `lora_A` [r, in]), A the up-projection (PEFT
/// `lora_B` [out, r]) times the adapter's scale alpha/r, W_res the base the adapter sits on (W itself,
/// or W − s·B₀·A₀ for a v1/v2 residual pair). Norms of activations are root-mean-square over tokens of
/// the per-token Euclidean norm (so ‖BX‖/‖X‖ of the null variant is √(Σλ_min/Σλ) of the plain
/// covariance on the set it was built from); weight norms are Frobenius. Output = W_res·x + s·A·B·x
/// (no bias).
public struct AdapterNorms: Codable, Sendable, Equatable {
    public var name: String
    public var tokens: Int
    public var xNorm: Double
    public var downXNorm: Double
    public var adapterXNorm: Double
    public var residualXNorm: Double
    public var outputNorm: Double
    public var downNorm: Double
    public var upNorm: Double
    public var residualNorm: Double

    public var downXRatio: Double { xNorm > 0 ? downXNorm / xNorm : 0 }
    public var adapterXRatio: Double { xNorm > 0 ? adapterXNorm / xNorm : 0 }
    public var adapterOutputShare: Double { outputNorm > 0 ? adapterXNorm / outputNorm : 0 }

    enum CodingKeys: String, CodingKey {
        case name, tokens
        case xNorm = "x_norm", downXNorm = "down_x_norm", adapterXNorm = "adapter_x_norm", residualXNorm = "residual_x_norm"
        case outputNorm = "output_norm", downNorm = "down_norm", upNorm = "up_norm", residualNorm = "residual_norm"
        case downXRatio = "down_x_ratio", adapterXRatio = "adapter_x_ratio", adapterOutputShare = "adapter_output_share"
    }

    public init(name: String, tokens: Int, xNorm: Double, downXNorm: Double, adapterXNorm: Double, residualXNorm: Double,
                outputNorm: Double, downNorm: Double, upNorm: Double, residualNorm: Double) {
        self.name = name
        self.tokens = tokens
        self.xNorm = xNorm
        self.downXNorm = downXNorm
        self.adapterXNorm = adapterXNorm
        self.residualXNorm = residualXNorm
        self.outputNorm = outputNorm
        self.downNorm = downNorm
        self.upNorm = upNorm
        self.residualNorm = residualNorm
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try c.decode(String.self, forKey: .name), tokens: try c.decode(Int.self, forKey: .tokens),
                  xNorm: try c.decode(Double.self, forKey: .xNorm), downXNorm: try c.decode(Double.self, forKey: .downXNorm),
                  adapterXNorm: try c.decode(Double.self, forKey: .adapterXNorm), residualXNorm: try c.decode(Double.self, forKey: .residualXNorm),
                  outputNorm: try c.decode(Double.self, forKey: .outputNorm), downNorm: try c.decode(Double.self, forKey: .downNorm),
                  upNorm: try c.decode(Double.self, forKey: .upNorm), residualNorm: try c.decode(Double.self, forKey: .residualNorm))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(tokens, forKey: .tokens)
        try c.encode(xNorm, forKey: .xNorm)
        try c.encode(downXNorm, forKey: .downXNorm)
        try c.encode(adapterXNorm, forKey: .adapterXNorm)
        try c.encode(residualXNorm, forKey: .residualXNorm)
        try c.encode(outputNorm, forKey: .outputNorm)
        try c.encode(downXRatio, forKey: .downXRatio)
        try c.encode(adapterXRatio, forKey: .adapterXRatio)
        try c.encode(adapterOutputShare, forKey: .adapterOutputShare)
        try c.encode(downNorm, forKey: .downNorm)
        try c.encode(upNorm, forKey: .upNorm)
        try c.encode(residualNorm, forKey: .residualNorm)
    }
}

/// Measures `AdapterNorms` for every module of an adapter folder while the model runs the calibration
/// set (`Transformer.linearInputObserver`); sums of squares in double precision, summed over ranks.
public final class AdapterNormMeter: LinearInputObserver {
    struct Module {
        let module: LinearModule
        let down: Tensor, up: Tensor, residual: Tensor
        let downNorm: Double, upNorm: Double, residualNorm: Double
    }
    let scale: Float
    let modules: [Module]
    let bySite: [InputSite: [Int]]
    /// Per module: Σ‖x‖², Σ‖Bx‖², Σ‖s·ABx‖², Σ‖W_res x‖², Σ‖y‖².
    var sums: [[Double]]
    var tokens: [Int]
    var d: [Float] = [], u: [Float] = [], y: [Float] = []
    public private(set) var problem: String?

    /// `model` holds the original base weights (whatever adapters are attached for the forward pass).
    public init(model: Transformer, folder: LoRANull.Folder) {
        scale = folder.scale
        var list: [Module] = []
        for a in folder.loaded.adapters {
            let p = folder.parts(a)
            var w = LoRAInitialisation.moduleWeight(model, a.module)
            if let initial = p.initial {
                // W_res = W − s·B₀·A₀, in double precision.
                let (out, inp, r) = (a.module.outFeatures, a.module.inFeatures, initial.down.shape[0])
                let s = Double(folder.scale)
                w = Tensor(shape: [out, inp]) { dst in
                    for i in 0..<out {
                        for j in 0..<inp {
                            var acc = 0.0
                            for k in 0..<r { acc += Double(initial.up.scalars[i * r + k]) * Double(initial.down.scalars[k * inp + j]) }
                            dst[i * inp + j] = Float(Double(w.scalars[i * inp + j]) - s * acc)
                        }
                    }
                }
            }
            list.append(Module(module: a.module, down: p.down, up: p.up, residual: w,
                               downNorm: p.down.sumOfSquares.squareRoot(), upNorm: p.up.sumOfSquares.squareRoot(),
                               residualNorm: w.sumOfSquares.squareRoot()))
        }
        modules = list
        var bySite: [InputSite: [Int]] = [:]
        for (i, m) in list.enumerated() { bySite[InputSite(m.module), default: []].append(i) }
        self.bySite = bySite
        sums = list.map { _ in [Double](repeating: 0, count: 5) }
        tokens = list.map { _ in 0 }
    }

    static func squares(_ p: UnsafePointer<Float>, rows: Int, width: Int, stride: Int) -> Double {
        var total = 0.0
        for n in 0..<rows {
            var s: Float = 0
            for j in 0..<width { s += p[n * stride + j] * p[n * stride + j] }
            total += Double(s)
        }
        return total
    }

    public func observe(layer: Int, group: LinearGroup, rows: UnsafePointer<Float>, stride: Int, width: Int, batch: Int, sequence: Int) {
        guard let indices = bySite[InputSite(layer: layer, group: group, width: width)] else { return }
        let N = batch * sequence
        let xx = AdapterNormMeter.squares(rows, rows: N, width: width, stride: stride)
        if !xx.isFinite, problem == nil {
            problem = "a non-finite activation in the input of \(indices.map { modules[$0].module.path }.joined(separator: ", "))"
        }
        for i in indices {
            let m = modules[i], (out, r) = (m.module.outFeatures, m.down.shape[0])
            if d.count < N * r { d = [Float](repeating: 0, count: N * r) }
            if u.count < N * out { u = [Float](repeating: 0, count: N * out) }
            if y.count < N * out { y = [Float](repeating: 0, count: N * out) }
            var (dd, uu, rr, yy) = (0.0, 0.0, 0.0, 0.0)
            d.withUnsafeMutableBufferPointer { dp in
                u.withUnsafeMutableBufferPointer { up in
                    y.withUnsafeMutableBufferPointer { yp in
                        m.down.withUnsafeBufferPointer { down in
                            BLAS.gemm(.none, .transposed, m: N, n: r, k: width, a: rows, lda: stride, b: down.baseAddress!, ldb: width,
                                      c: dp.baseAddress!, ldc: r)
                        }
                        m.up.withUnsafeBufferPointer { upw in
                            BLAS.gemm(.none, .transposed, m: N, n: out, k: r, alpha: scale, a: dp.baseAddress!, lda: r,
                                      b: upw.baseAddress!, ldb: r, c: up.baseAddress!, ldc: out)
                        }
                        m.residual.withUnsafeBufferPointer { w in
                            BLAS.gemm(.none, .transposed, m: N, n: out, k: width, a: rows, lda: stride, b: w.baseAddress!, ldb: width,
                                      c: yp.baseAddress!, ldc: out)
                        }
                        dd = AdapterNormMeter.squares(dp.baseAddress!, rows: N, width: r, stride: r)
                        uu = AdapterNormMeter.squares(up.baseAddress!, rows: N, width: out, stride: out)
                        rr = AdapterNormMeter.squares(yp.baseAddress!, rows: N, width: out, stride: out)
                        BLAS.axpy(count: N * out, alpha: 1, x: up.baseAddress!, y: yp.baseAddress!)
                        yy = AdapterNormMeter.squares(yp.baseAddress!, rows: N, width: out, stride: out)
                    }
                }
            }
            sums[i][0] += xx
            sums[i][1] += dd
            sums[i][2] += uu
            sums[i][3] += rr
            sums[i][4] += yy
            tokens[i] += N
        }
    }

    /// The figures summed over ranks (one packed all-reduce), in module order; every rank gets them.
    public func finish(communicator: any Communicator) throws -> [AdapterNorms] {
        var packed = sums.flatMap { $0 } + tokens.map(Double.init) + [problem == nil ? 0 : 1]
        try communicator.allReduce(&packed, op: .sum)
        if packed.last! > 0 {
            let messages = try communicator.allGatherArrays(Array((problem ?? "").utf8))
            let (r, bytes) = messages.enumerated().first { !$0.element.isEmpty }!
            throw AnalysisError("verification: \(String(decoding: bytes, as: UTF8.self)) (rank \(r))")
        }
        return modules.enumerated().map { i, m in
            let s = Array(packed[(5 * i)..<(5 * i + 5)]), n = packed[5 * modules.count + i]
            func rms(_ v: Double) -> Double { n > 0 ? (v / n).squareRoot() : 0 }
            return AdapterNorms(name: m.module.path, tokens: Int(n), xNorm: rms(s[0]), downXNorm: rms(s[1]), adapterXNorm: rms(s[2]),
                                residualXNorm: rms(s[3]), outputNorm: rms(s[4]), downNorm: m.downNorm, upNorm: m.upNorm,
                                residualNorm: m.residualNorm)
        }
    }
}
