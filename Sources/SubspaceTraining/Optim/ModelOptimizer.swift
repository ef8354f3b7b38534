import SubspaceCore
import SubspaceModel

/// AdamW over a model's trainable tensors (base tensors not frozen, and LoRA factors), with global
/// gradient-norm clipping. Weight decay follows the common rule: tensors of rank ≥ 2 decay, vectors
/// (biases, norm weights) do not.
public final class ModelOptimizer {
    public let model: Transformer
    public var adam: AdamW
    public var maxGradientNorm: Float?
    /// Moments over the base layout and over the adapters' flat buffer.
    let baseM: TensorStorage, baseV: TensorStorage
    let adapterM: TensorStorage?, adapterV: TensorStorage?

    public init(model: Transformer, adam: AdamW, maxGradientNorm: Float? = 1.0) {
        self.model = model
        self.adam = adam
        self.maxGradientNorm = maxGradientNorm
        let baseCount = model.trainsBaseWeights ? model.layout.totalCount : 0
        baseM = TensorStorage(capacity: baseCount)
        baseV = TensorStorage(capacity: baseCount)
        adapterM = model.adapters.map { TensorStorage(capacity: $0.totalCount) }
        adapterV = model.adapters.map { TensorStorage(capacity: $0.totalCount) }
    }

    /// Trainable ranges of the base buffer with their decay flag.
    var baseRanges: [(range: Range<Int>, decay: Bool)] {
        guard model.trainsBaseWeights else { return [] }
        return model.layout.entries.filter { !model.frozen.contains($0.role) }.map { ($0.range, $0.shape.count >= 2) }
    }

    /// The global gradient norm (before clipping) over every trainable tensor.
    public func gradientNorm() -> Double {
        var sum = 0.0
        if let g = model.gradientStorage {
            for (r, _) in baseRanges { sum += GradientClipping.sumOfSquares(g.pointer + r.lowerBound, count: r.count) }
        }
        if let a = model.adapters { sum += GradientClipping.sumOfSquares(a.gradientStorage.pointer, count: a.totalCount) }
        return sum.squareRoot()
    }

    /// Clips, then takes one AdamW step at `learningRate`. Returns the norm before clipping.
    @discardableResult
    public func step(learningRate: Float) -> Double {
        let norm = gradientNorm()
        let factor = maxGradientNorm.map { GradientClipping.factor(norm: norm, maxNorm: $0) } ?? 1
        adam.beginStep()
        if let g = model.gradientStorage {
            for (r, decay) in baseRanges {
                adam.update(params: model.parameterStorage.pointer + r.lowerBound, grads: g.pointer + r.lowerBound,
                            m: baseM.pointer + r.lowerBound, v: baseV.pointer + r.lowerBound, count: r.count,
                            learningRate: learningRate, decay: decay, gradientScale: factor)
            }
        }
        if let a = model.adapters, let m = adapterM, let v = adapterV {
            for adapter in a.adapters {
                for (offset, count, trains) in [(adapter.aOffset, adapter.aCount, a.config.trainA),
                                                (adapter.bOffset, adapter.bCount, a.config.trainB)] where trains {
                    adam.update(params: a.storage.pointer + offset, grads: a.gradientStorage.pointer + offset,
                                m: m.pointer + offset, v: v.pointer + offset, count: count,
                                learningRate: learningRate, decay: true, gradientScale: factor)
                }
            }
        }
        return norm
    }
}
