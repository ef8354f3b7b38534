import Foundation
import SubspaceCore
import SubspaceModel

/// Grows a model to a larger residual width so that the grown model computes the same function
/// (up to float rounding) — the target of LoRA-X's different-width path (issue 11, item 4).
///
/// Why this growth (and not Net2Net duplication or distillation): LoRA-X's least-squares map between
/// singular bases assumes the target's *leading* coordinates are the source's (`CoordinateEmbedding`,
/// role by role). Growth that appends new units keeps exactly that correspondence, so the transfer is
/// tested on the assumption it makes; Net2Net's duplication (x' = [x, x]) would spread each source
/// coordinate over two target ones and halve what the leading-coordinate map can see; distillation
/// gives no coordinate correspondence at all. The grown model is then trained further (the study's
/// `grown` run), so it is a related but not identical base, as B1 is.
///
/// What is appended, per tensor (weights [out, in], new heads and MLP units after the old ones, the
/// head dimension kept, so heads grow in proportion — key/value heads too, keeping the GQA groups):
/// - The residual stream's new coordinates carry a fixed linear function of the old ones: for
///   LayerNorm (gpt2) the *mean* of the old coordinates, so the mean over all d' coordinates is the old
///   mean and the centred new coordinates are exactly 0; for RMSNorm (llama, qwen2) zero. Every writer
///   of the residual (embeddings, attention and MLP output projections, their biases) gets new rows that
///   produce that function (column means of the old rows, or zeros).
/// - Norms: the variance (or mean square) over d' coordinates is d/d' of the old one, so the old gains
///   are scaled by √(d/d') and the epsilon by d/d' (written to config.json); new biases 0. The norms'
///   outputs in the new coordinates are then exactly 0.
/// - Readers of a norm's output (q/k/v, gate/up, an untied head) see zeros in the new coordinates, so
///   their new columns — and the rows of new heads and units — are Gaussian noise (std `noise`): the
///   function does not change, and training can use them at once.
/// - The output projections' columns for new heads and units are 0, so those heads and units are
///   silent until training moves them (their gradient is not zero).
public enum WidthGrowth {
    /// The grown model's shape: hidden width `width`, heads, key/value heads and MLP width scaled by
    /// width/d (each must come out whole), head dimension kept, norm epsilon scaled by d/width.
    public static func grownConfig(_ c: ModelConfig, width: Int) throws -> ModelConfig {
        let d = c.hiddenSize
        guard width > d else { throw AnalysisError("grown width \(width) must be larger than the model's width \(d)") }
        func scaled(_ n: Int, _ what: String) throws -> Int {
            guard (n * width) % d == 0 else {
                throw AnalysisError("grown width \(width): \(what) \(n) × \(width)/\(d) is not a whole number; pick a width that scales it exactly")
            }
            return n * width / d
        }
        var g = c
        g.hiddenSize = width
        g.headCount = try scaled(c.headCount, "heads")
        g.keyValueHeadCount = try scaled(c.keyValueHeadCount, "key/value heads")
        g.intermediateSize = try scaled(c.intermediateSize, "MLP width")
        g.normEpsilon = c.normEpsilon * Float(d) / Float(width)
        if c.family == .gpt2, g.headCount * g.headDimension != width {
            throw AnalysisError("grown width \(width): gpt2 needs heads × head dimension = width")
        }
        if let p = g.problems().first { throw AnalysisError("grown width \(width): \(p)") }
        return g
    }

    /// A new model of width `width` holding `model`'s function (see the type's comment). `seed` draws
    /// the new units' noise.
    public static func grow(_ model: Transformer, width: Int, noise: Float, seed: UInt64) throws -> Transformer {
        let c = model.config
        let g = try grownConfig(c, width: width)
        let grown = Transformer(config: g)
        let d = c.hiddenSize, dNew = g.hiddenSize
        let meanCarried = c.family == .gpt2   // LayerNorm: new coordinates carry the old mean; RMSNorm: zero
        let gainScale = Float((Double(d) / Double(dNew)).squareRoot())
        var rng = RandomStream(seed: seed, stream: 0x6120)

        /// [rows', cols'] with `old` at the top left and `fill(i, j)` elsewhere.
        func embed(_ old: Tensor, _ rows: Int, _ cols: Int, fill: (Int, Int) -> Float) -> Tensor {
            let (r0, c0) = (old.shape[0], old.shape[1])
            let src = old.scalars
            var out = [Float](repeating: 0, count: rows * cols)
            for i in 0..<rows {
                for j in 0..<cols { out[i * cols + j] = i < r0 && j < c0 ? src[i * c0 + j] : fill(i, j) }
            }
            return Tensor(shape: [rows, cols], values: out)
        }
        func vector(_ old: Tensor, _ n: Int, fill: Float) -> Tensor {
            Tensor(shape: [n], values: old.scalars + [Float](repeating: fill, count: n - old.count))
        }
        func mean(_ xs: [Float]) -> Float { xs.isEmpty ? 0 : Float(xs.reduce(0.0) { $0 + Double($1) } / Double(xs.count)) }
        /// A reader of the residual (or of new heads/units): new rows and columns are noise.
        func reader(_ old: Tensor, _ rows: Int, _ cols: Int) -> Tensor {
            embed(old, rows, cols) { _, _ in rng.nextNormal() * noise }
        }
        /// A writer of the residual: new rows carry the old rows' column means (gpt2) or zero; columns of
        /// new heads/units are zero.
        func writer(_ old: Tensor, _ rows: Int, _ cols: Int) -> Tensor {
            let (r0, c0) = (old.shape[0], old.shape[1])
            let src = old.scalars
            let columnMeans = meanCarried ? (0..<c0).map { j in mean((0..<r0).map { src[$0 * c0 + j] }) } : []
            return embed(old, rows, cols) { i, j in meanCarried && i >= r0 && j < c0 ? columnMeans[j] : 0 }
        }
        /// An embedding table [n, d] → [n, d']: the new columns carry each row's mean (gpt2) or zero.
        func table(_ old: Tensor) -> Tensor {
            let (n, c0) = (old.shape[0], old.shape[1])
            let src = old.scalars
            let rowMeans = (0..<n).map { i in meanCarried ? mean(Array(src[(i * c0)..<((i + 1) * c0)])) : 0 }
            return embed(old, n, dNew) { i, _ in rowMeans[i] }
        }
        func gain(_ old: Tensor) -> Tensor {
            let scaled = old.scalars.map { $0 * gainScale }
            return vector(Tensor(shape: [d], values: scaled), dNew, fill: mean(scaled))
        }

        for entry in grown.layout.entries {
            let role = entry.role
            let old = model.tensor(role)
            let s = entry.shape
            let value: Tensor
            switch role {
            case .tokenEmbedding, .positionEmbedding: value = table(old)
            case .finalNormWeight: value = gain(old)
            case .finalNormBias: value = vector(old, dNew, fill: 0)
            case .outputHead: value = reader(old, s[0], s[1])
            case .layer(_, let t):
                switch t {
                case .norm1Weight, .norm2Weight: value = gain(old)
                case .norm1Bias, .norm2Bias, .qBias, .kBias, .vBias, .upBias: value = vector(old, s[0], fill: 0)
                case .q, .k, .v, .gate, .up: value = reader(old, s[0], s[1])
                case .o, .down: value = writer(old, s[0], s[1])
                case .oBias, .downBias: value = vector(old, s[0], fill: meanCarried ? mean(old.scalars) : 0)
                }
            }
            precondition(value.shape == s, "\(role.name): grown to \(value.shape), layout has \(s)")
            grown.setTensor(role, value)
        }
        return grown
    }

    /// `source`'s LoRA adapters carried to the grown shape `g` by the rule the weights follow, so the model
    /// grown from `c` computes with them what the source model computes with `source` (up to rounding).
    /// lora_A's new input columns are zero (new coordinates and new heads' or units' inputs are not read);
    /// lora_B's rows per part of the module: a reader's (q, k, v, gate, up) new rows zero, a writer's (o,
    /// down) new rows the column means of its old rows under gpt2's LayerNorm (the residual's new coordinates
    /// carry the old ones' mean), zero under RMSNorm. This is the plain "copy" across widths — the baseline
    /// LoRA-X's different-width transfer has to beat.
    public static func grow(_ source: LoRAAdapters, from c: ModelConfig, to g: ModelConfig) throws -> LoRAAdapters {
        let grown = try LoRAAdapters(config: source.config, model: g)
        let r = source.config.rank
        let meanCarried = c.family == .gpt2
        for new in grown.adapters {
            guard let old = source.adapter(path: new.module.path) else {
                throw AnalysisError("LoRA module \(new.module.path) is in the grown model's selection but not the source's")
            }
            let parts = new.module.parts.count
            let (inOld, inNew) = (old.module.inFeatures, new.module.inFeatures)
            guard parts == old.module.parts.count, old.module.outFeatures % parts == 0, new.module.outFeatures % parts == 0,
                  inNew >= inOld, new.module.outFeatures >= old.module.outFeatures else {
                throw AnalysisError("LoRA module \(new.module.path): [\(old.module.outFeatures), \(inOld)] does not grow part by part to [\(new.module.outFeatures), \(inNew)]")
            }
            let a = source.factor(old, b: false).scalars
            var a2 = [Float](repeating: 0, count: r * inNew)
            for i in 0..<r { for j in 0..<inOld { a2[i * inNew + j] = a[i * inOld + j] } }
            let b = source.factor(old, b: true).scalars
            let (rowsOld, rowsNew) = (old.module.outFeatures / parts, new.module.outFeatures / parts)
            var b2 = [Float](repeating: 0, count: new.module.outFeatures * r)
            for (p, part) in new.module.parts.enumerated() {
                for i in 0..<rowsOld { for k in 0..<r { b2[(p * rowsNew + i) * r + k] = b[(p * rowsOld + i) * r + k] } }
                guard meanCarried, part == .o || part == .down else { continue }
                for k in 0..<r {
                    let mean = (0..<rowsOld).reduce(0.0) { $0 + Double(b[(p * rowsOld + $1) * r + k]) } / Double(rowsOld)
                    for i in rowsOld..<rowsNew { b2[(p * rowsNew + i) * r + k] = Float(mean) }
                }
            }
            grown.setFactor(new, b: false, Tensor(shape: [r, inNew], values: a2))
            grown.setFactor(new, b: true, Tensor(shape: [new.module.outFeatures, r], values: b2))
        }
        return grown
    }

    /// Reads the PEFT adapter folder `adapter` of the model folder `sourceModel`, grows it to the shape of the
    /// model folder `grownModel` (see `grow(_:from:to:)`) and writes it as a PEFT folder `output`.
    public static func growAdapter(folder adapter: String, sourceModel: String, grownModel: String, output: String) throws {
        let c = try ModelConfig(hfConfigAt: (sourceModel as NSString).appendingPathComponent("config.json"))
        let g = try ModelConfig(hfConfigAt: (grownModel as NSString).appendingPathComponent("config.json"))
        let grown = try grow(try PEFTAdapter.load(folder: adapter, for: c), from: c, to: g)
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        try PEFTAdapter.save(grown, model: g, to: output, baseModel: grownModel)
    }

    /// Reads the HF model folder `source`, grows it and writes the grown HF folder `output`.
    @discardableResult
    public static func grow(folder source: String, width: Int, noise: Float, seed: UInt64, output: String) throws -> ModelConfig {
        let model = try HFCheckpoint.load(folder: source)
        let grown = try grow(model, width: width, noise: noise, seed: seed)
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        try HFCheckpoint.save(grown, to: output)
        return grown.config
    }
}
