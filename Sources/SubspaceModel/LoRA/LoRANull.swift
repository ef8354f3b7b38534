import Foundation
import SubspaceCore

/// LoRA-Null (seed `000`): adapters whose down-projection spans the directions the calibration inputs
/// use least (the smallest eigenvectors of the input covariance).
///
/// Naming: the seed's `B` (BLinear, in → r) is the *down*-projection = PEFT `lora_A` [r, in]; the seed's
/// `A` (ALinear, r → out) is the *up*-projection = PEFT `lora_B` [out, r]. Files use PEFT's names; reports
/// print the seed's metric names and say which tensor each letter is.
public enum LoRANullVariant: String, Codable, Sendable, CaseIterable {
    /// The reference code's `--singular_aware_2`: down = U_minᵀ (frozen), up = 0 (trainable).
    case null
    /// `--singular_aware`: T = W·U_min·U_minᵀ, base W − T, (down, up) from T's rank-r SVD, both trainable.
    case v1
    /// v1's initialisation with the down-projection frozen (`train_model_freeze_a.py --Null_mode`).
    case v2

    /// The factors this variant keeps frozen, by PEFT name: the intention, never inferred from names in
    /// a model (the seed's freezing bug came from matching names).
    public var frozenFactors: [LoRAFactor] { self == .v1 ? [] : [.down] }
    /// How the adapter folder expresses the model on the *original* base.
    public var export: LoRANullExport { self == .null ? .plain : .residualPair }
}

/// One of a LoRA module's two factors.
public enum LoRAFactor: String, Codable, Sendable, CaseIterable {
    /// PEFT `lora_A` [r, in] (the seed's B).
    case down = "lora_A"
    /// PEFT `lora_B` [out, r] (the seed's A).
    case up = "lora_B"
}

public enum LoRANullExport: String, Codable, Sendable {
    /// A rank-r adapter on the original base (`null`: the base is not changed).
    case plain
    /// v1/v2: the base becomes W_res = W − s·B₀·A₀, so the folder holds the rank-2r adapter
    /// [B, −B₀]·[A; A₀] with alpha doubled (PiSSA's export): on the original base it gives
    /// W_res + s·B·A, and at step 0 (B = B₀, A = A₀) exactly W.
    case residualPair = "residual-pair"
}

/// `null_space.json`, written beside the PEFT files by `subspace lora-null build` and carried into the
/// trained adapter folder.
public struct LoRANullManifest: Codable, Sendable, Equatable {
    public struct Module: Codable, Sendable, Equatable {
        /// HF module path.
        public var name: String
        public var inputWidth: Int
        /// The r smallest eigenvalues of the input covariance, ascending.
        public var eigenvalues: [Double]
        /// The covariance's trace Σλ (all eigenvalues) and largest eigenvalue.
        public var trace: Double
        public var largest: Double
        /// Σλ_min / Σλ.
        public var share: Double
        /// √share: ‖BX‖/‖X‖ of the null variant on the calibration set (exact for the plain estimator).
        public var closedFormRatio: Double

        public init(name: String, inputWidth: Int, eigenvalues: [Double], trace: Double, largest: Double) {
            self.name = name
            self.inputWidth = inputWidth
            self.eigenvalues = eigenvalues
            self.trace = trace
            self.largest = largest
            self.share = trace > 0 ? eigenvalues.reduce(0, +) / trace : 0
            self.closedFormRatio = share.squareRoot()
        }

        enum CodingKeys: String, CodingKey {
            case name, eigenvalues, trace, largest, share
            case inputWidth = "input_width", closedFormRatio = "closed_form_ratio"
        }
    }

    public var format = "subspace-lora-null/1"
    public var variant: LoRANullVariant
    /// The trained rank r (the PEFT file has 2r for a residual pair).
    public var rank: Int
    public var alpha: Float
    public var covariance: String
    public var export: LoRANullExport
    /// PEFT tensors the variant keeps frozen.
    public var frozen: [LoRAFactor]
    public var calibration: String
    public var calibrationSequences: Int
    public var calibrationTokens: Int
    public var worldSize: Int
    public var naming = "seed B (BLinear, down-projection, in → r) = PEFT lora_A [r, in]; seed A (ALinear, up-projection, r → out) = PEFT lora_B [out, r]"
    public var modules: [Module]

    public init(variant: LoRANullVariant, rank: Int, alpha: Float, covariance: String, calibration: String,
                calibrationSequences: Int, calibrationTokens: Int, worldSize: Int, modules: [Module]) {
        self.variant = variant
        self.rank = rank
        self.alpha = alpha
        self.covariance = covariance
        self.export = variant.export
        self.frozen = variant.frozenFactors
        self.calibration = calibration
        self.calibrationSequences = calibrationSequences
        self.calibrationTokens = calibrationTokens
        self.worldSize = worldSize
        self.modules = modules
    }

    enum CodingKeys: String, CodingKey {
        case format, variant, rank, alpha, covariance, export, frozen, calibration, naming, modules
        case calibrationSequences = "calibration_sequences", calibrationTokens = "calibration_tokens", worldSize = "world_size"
    }

    public static let fileName = "null_space.json"

    public static func path(in folder: String) -> String { (folder as NSString).appendingPathComponent(fileName) }

    /// The manifest of an adapter folder, or nil when it has none (a plain PEFT adapter).
    public static func read(folder: String) throws -> LoRANullManifest? {
        let p = path(in: folder)
        guard FileManager.default.fileExists(atPath: p) else { return nil }
        do {
            return try JSONDecoder().decode(LoRANullManifest.self, from: Data(contentsOf: URL(fileURLWithPath: p)))
        } catch {
            throw LoRAError(reason: "\(p): not a LoRA-Null manifest (\(error))")
        }
    }

    public func write(folder: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write([UInt8](try encoder.encode(self)), to: LoRANullManifest.path(in: folder))
    }
}

/// Building and reading LoRA-Null adapters.
public enum LoRANull {
    /// The factors of one module: `weight` W [out, in], `basis` U [r, in] whose rows are the r smallest
    /// covariance eigenvectors (ascending), `scale` the adapter's alpha/r.
    /// - null: down = U, up = 0.
    /// - v1, v2: T = W·Uᵀ·U; with M = W·Uᵀ = P·Σ·Qᵀ (thin SVD, [out, r]), T = P·Σ·(Qᵀ·U) where Qᵀ·U has
    ///   orthonormal rows, so down = √(Σ/s)·Qᵀ·U and up = P·√(Σ/s) give s·up·down = T exactly (in exact
    ///   arithmetic) at the cost of an [out, r] SVD instead of an [out, in] one.
    public static func factors(variant: LoRANullVariant, weight: Tensor, basis: Tensor, scale: Float) throws -> (down: Tensor, up: Tensor) {
        let (out, inp, r) = (weight.shape[0], weight.shape[1], basis.shape[0])
        precondition(basis.shape == [r, inp], "basis \(basis.shape) for a weight \(weight.shape)")
        if variant == .null { return (basis, Tensor(zeros: [out, r])) }
        let m = BLAS.matmul(weight, basis, transB: .transposed)          // [out, r]
        let svd = try LAPACK.svd(m)                                       // u [out, k], s [k], vt [k, r]
        let k = svd.s.count
        let root = (0..<r).map { $0 < k ? (svd.s[$0] / scale).squareRoot() : 0 }
        let rotated = BLAS.matmul(svd.vt, basis)                          // Qᵀ·U [k, in]
        let down = Tensor(shape: [r, inp]) { d in
            rotated.withUnsafeBufferPointer { q in for i in 0..<k { for j in 0..<inp { d[i * inp + j] = root[i] * q[i * inp + j] } } }
        }
        let up = Tensor(shape: [out, r]) { u in
            svd.u.withUnsafeBufferPointer { p in for i in 0..<out { for j in 0..<k { u[i * r + j] = p[i * k + j] * root[j] } } }
        }
        return (down, up)
    }

    /// A LoRA-Null (or plain PEFT) adapter folder read for training or verification: the trainable rank-r
    /// part and, for a residual pair, the initial factors that define the residual base.
    public struct Folder {
        public let manifest: LoRANullManifest?
        /// The folder as PEFT loads it onto the original base (rank r, or 2r for a residual pair).
        public let loaded: LoRAAdapters
        /// The rank of the adapter part.
        public var rank: Int { manifest?.export == .residualPair ? loaded.config.rank / 2 : loaded.config.rank }
        /// alpha/r of the adapter part (a residual pair doubles both, so it is the same).
        public var scale: Float { loaded.config.scale }

        public init(folder: String, model: ModelConfig) throws {
            manifest = try LoRANullManifest.read(folder: folder)
            loaded = try PEFTAdapter.load(folder: folder, for: model)
            if let manifest {
                let expected = manifest.export == .residualPair ? 2 * manifest.rank : manifest.rank
                guard loaded.config.rank == expected else {
                    throw LoRAError(reason: "\(folder): adapter_config.json has r = \(loaded.config.rank), but null_space.json says rank \(manifest.rank) exported as \(manifest.export.rawValue) (r = \(expected))")
                }
            }
        }

        /// The adapter part of one module: down [r, in] (seed B), up [out, r] (seed A); for a residual
        /// pair also the initial factors, with W_res = W − s·up₀·down₀.
        public func parts(_ a: LoRAAdapters.Adapter) -> (down: Tensor, up: Tensor, initial: (down: Tensor, up: Tensor)?) {
            let A = loaded.factor(a, b: false), B = loaded.factor(a, b: true)
            guard manifest?.export == .residualPair else { return (A, B, nil) }
            let (r, inp, out) = (rank, a.module.inFeatures, a.module.outFeatures)
            let down = Tensor(shape: [r, inp], values: Array(A.scalars[0..<(r * inp)]))
            let down0 = Tensor(shape: [r, inp], values: Array(A.scalars[(r * inp)...]))
            let up = Tensor(shape: [out, r]) { d in for i in 0..<out { for j in 0..<r { d[i * r + j] = B.scalars[i * 2 * r + j] } } }
            let up0 = Tensor(shape: [out, r]) { d in for i in 0..<out { for j in 0..<r { d[i * r + j] = -B.scalars[i * 2 * r + r + j] } } }
            return (down, up, (down0, up0))
        }

        /// Trainable rank-r adapters for `model` (targets, rank and alpha from the folder; the factors
        /// the variant freezes marked frozen). For a residual pair the model's base becomes
        /// W_res = W − s·B₀·A₀ (in double precision) and the initial factors are returned for the export.
        public func prepareTraining(_ model: Transformer, seed: UInt64 = 0, dropout: Float = 0) throws -> (adapters: LoRAAdapters, initial: [Float]?) {
            let c = loaded.config
            var config = LoRAConfig(rank: rank, alpha: manifest?.export == .residualPair ? c.alpha / 2 : c.alpha,
                                    targets: c.targets, dropout: dropout, useRSLoRA: c.useRSLoRA)
            if c.useRSLoRA, manifest?.export == .residualPair { config.alpha = c.alpha / Float(2).squareRoot() }
            let frozen = manifest?.frozen ?? []
            config.trainA = !frozen.contains(.down)
            config.trainB = !frozen.contains(.up)
            let adapters = try LoRAAdapters(config: config, model: model.config, seed: seed)
            var initial: [Float]? = nil
            if manifest?.export == .residualPair {
                for (a, l) in zip(adapters.adapters, loaded.adapters) {
                    let p = parts(l)
                    adapters.setFactor(a, b: false, p.initial!.down)
                    adapters.setFactor(a, b: true, p.initial!.up)
                }
                adapters.merge(into: model, sign: -1)
                initial = Array(UnsafeBufferPointer(start: adapters.storage.pointer, count: adapters.totalCount))
            }
            for (a, l) in zip(adapters.adapters, loaded.adapters) {
                let p = parts(l)
                adapters.setFactor(a, b: false, p.down)
                adapters.setFactor(a, b: true, p.up)
            }
            return (adapters, initial)
        }
    }
}
