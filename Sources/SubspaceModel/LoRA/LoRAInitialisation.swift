import Foundation
import SubspaceCore

/// SVD-based starting points for LoRA adapters.
///
/// - `svdDelta`: from the rank-R factors of a teacher's ΔW (`factors.safetensors` of `subspace
///   delta-svd`: `<module>.lora_B` = U·√Σ [out, R], `<module>.lora_A` = √Σ·Vᵀ [R, in]); the adapter's
///   first r components are scaled by 1/√scale each, so scale·B·A equals ΔW_r exactly whatever alpha is,
///   with the singular values split symmetrically between the factors.
/// - `pissa`: PEFT's PiSSA: the top-r SVD of the base weight W itself, A = √(Σ_r/scale)·V_rᵀ,
///   B = U_r·√(Σ_r/scale), and the base keeps the residual W − scale·B·A.
public enum LoRAInitialisation {
    public static func svdDelta(_ adapters: LoRAAdapters, factors path: String) throws {
        let file = try SafetensorsFile(path: path)
        let r = adapters.config.rank
        let root = 1 / adapters.config.scale.squareRoot()
        for a in adapters.adapters {
            let m = a.module
            let aKey = m.path + ".lora_A", bKey = m.path + ".lora_B"
            guard file.contains(aKey), file.contains(bKey) else {
                throw LoRAError(reason: "\(path): no factors for module \(m.path) (was delta-svd run on these models and modules?)")
            }
            let A = try file.tensor(aKey), B = try file.tensor(bKey)
            guard A.rank == 2, B.rank == 2, A.shape[1] == m.inFeatures, B.shape[0] == m.outFeatures, A.shape[0] == B.shape[1] else {
                throw LoRAError(reason: "\(path): factors of \(m.path) have shapes \(B.shape)·\(A.shape), the module is [\(m.outFeatures), \(m.inFeatures)]")
            }
            guard A.shape[0] >= r else {
                throw LoRAError(reason: "\(path): factors of \(m.path) have rank \(A.shape[0]), the adapter needs \(r)")
            }
            let newA = Tensor(shape: [r, m.inFeatures]) { out in
                A.withUnsafeBufferPointer { src in for i in 0..<(r * m.inFeatures) { out[i] = src[i] * root } }
            }
            let newB = Tensor(shape: [m.outFeatures, r]) { out in
                B.withUnsafeBufferPointer { src in
                    for i in 0..<m.outFeatures { for j in 0..<r { out[i * r + j] = src[i * A.shape[0] + j] * root } }
                }
            }
            adapters.setFactor(a, b: false, newA)
            adapters.setFactor(a, b: true, newB)
        }
    }

    /// Initialises every adapter from the SVD of its base weight and replaces the base weight by the
    /// residual (in high precision).
    public static func pissa(_ adapters: LoRAAdapters, model: Transformer) throws {
        let r = adapters.config.rank, scale = adapters.config.scale
        for a in adapters.adapters {
            let m = a.module
            let w = moduleWeight(model, m)                      // [out, in]
            let svd = try LAPACK.svd(w)
            guard svd.s.count >= r else { throw LoRAError(reason: "\(m.path): rank \(r) exceeds the weight's \(svd.s.count) singular values") }
            let root = svd.s.prefix(r).map { ($0 / scale).squareRoot() }
            let A = Tensor(shape: [r, m.inFeatures]) { out in
                svd.vt.withUnsafeBufferPointer { vt in
                    for i in 0..<r { for j in 0..<m.inFeatures { out[i * m.inFeatures + j] = root[i] * vt[i * m.inFeatures + j] } }
                }
            }
            let k = svd.s.count
            let B = Tensor(shape: [m.outFeatures, r]) { out in
                svd.u.withUnsafeBufferPointer { u in
                    for i in 0..<m.outFeatures { for j in 0..<r { out[i * r + j] = u[i * k + j] * root[j] } }
                }
            }
            adapters.setFactor(a, b: false, A)
            adapters.setFactor(a, b: true, B)
        }
        adapters.merge(into: model, sign: -1)  // base ← W − scale·B·A
    }

    /// A linear module's weight [out, in] (its parts stacked).
    public static func moduleWeight(_ model: Transformer, _ m: LinearModule) -> Tensor {
        let parts = m.parts.map { model.tensor(.layer(m.layer, $0)) }
        return Tensor(shape: [m.outFeatures, m.inFeatures], values: parts.flatMap(\.scalars))
    }

    /// A PiSSA adapter trained from factors (B₀, A₀) as a plain LoRA adapter on the *original* base, as
    /// PEFT converts it on save: W_res + s·B·A = W + s·(B·A − B₀·A₀) = W + s·[B, −B₀]·[A; A₀], an adapter of
    /// rank 2r with alpha doubled so its scale is unchanged.
    public static func pissaAsLoRA(_ adapters: LoRAAdapters, initial: [Float], model: ModelConfig) throws -> LoRAAdapters {
        let c = adapters.config
        var doubled = LoRAConfig(rank: 2 * c.rank, alpha: c.useRSLoRA ? c.alpha * Float(2).squareRoot() : 2 * c.alpha,
                                 targets: c.targets, dropout: c.dropout, useRSLoRA: c.useRSLoRA)
        doubled.trainA = c.trainA
        doubled.trainB = c.trainB
        let out = try LoRAAdapters(config: doubled, model: model)
        let r = c.rank
        for (a, o) in zip(adapters.adapters, out.adapters) {
            let (inF, outF) = (a.module.inFeatures, a.module.outFeatures)
            let A = adapters.factor(a, b: false).scalars, B = adapters.factor(a, b: true).scalars
            let A0 = Array(initial[a.aOffset..<(a.aOffset + a.aCount)]), B0 = Array(initial[a.bOffset..<(a.bOffset + a.bCount)])
            out.setFactor(o, b: false, Tensor(shape: [2 * r, inF], values: A + A0))
            out.setFactor(o, b: true, Tensor(shape: [outF, 2 * r]) { dst in
                for i in 0..<outF { for j in 0..<r { dst[i * 2 * r + j] = B[i * r + j]; dst[i * 2 * r + r + j] = -B0[i * r + j] } }
            })
        }
        return out
    }
}
