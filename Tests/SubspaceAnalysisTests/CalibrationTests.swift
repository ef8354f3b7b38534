import Foundation
import Testing
import SubspaceCore
import SubspaceDistributed
import SubspaceModel
@testable import SubspaceAnalysis

/// Copies every observed input, for independent reference computations.
final class InputRecorder: LinearInputObserver {
    /// Per (layer, group): per forward call, the rows [N, width] and the sequence length.
    var rows: [InputSite: [(values: [Double], T: Int)]] = [:]
    func observe(layer: Int, group: LinearGroup, rows p: UnsafePointer<Float>, stride: Int, width: Int, batch: Int, sequence: Int) {
        var v: [Double] = []
        for n in 0..<(batch * sequence) { for j in 0..<width { v.append(Double(p[n * stride + j])) } }
        rows[InputSite(layer: layer, group: group, width: width), default: []].append((v, sequence))
    }
}

/// Jacobi eigenvalue iteration (cyclic sweeps of plane rotations): an independent reference for dsyevd.
func jacobiEigenvalues(_ a: [Double], n: Int) -> [Double] {
    var m = a
    for _ in 0..<100 {
        var off = 0.0
        for p in 0..<n { for q in (p + 1)..<n { off += m[p * n + q] * m[p * n + q] } }
        if off < 1e-30 { break }
        for p in 0..<n {
            for q in (p + 1)..<n where abs(m[p * n + q]) > 1e-300 {
                let theta = (m[q * n + q] - m[p * n + p]) / (2 * m[p * n + q])
                let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                let c = 1 / (t * t + 1).squareRoot(), s = t * c
                for k in 0..<n {
                    let (mkp, mkq) = (m[k * n + p], m[k * n + q])
                    m[k * n + p] = c * mkp - s * mkq
                    m[k * n + q] = s * mkp + c * mkq
                }
                for k in 0..<n {
                    let (mpk, mqk) = (m[p * n + k], m[q * n + k])
                    m[p * n + k] = c * mpk - s * mqk
                    m[q * n + k] = s * mpk + c * mqk
                }
            }
        }
    }
    return (0..<n).map { m[$0 * n + $0] }.sorted()
}

@Suite struct CalibrationTests {
    static let config = ModelConfig(family: .llama, vocabularySize: 40, hiddenSize: 16, layerCount: 2, headCount: 2,
                                    keyValueHeadCount: 1, intermediateSize: 24, maxPositions: 16)

    static func model() -> Transformer {
        let m = Transformer(config: config)
        m.initialize(seed: 11, std: 0.2)
        return m
    }

    /// 7 sequences of 12 tokens.
    static let data: CalibrationSet = {
        var rng = RandomStream(seed: 5)
        return CalibrationSet(source: "test", sequenceLength: 12, ids: (0..<(7 * 12)).map { _ in Int32(rng.nextUniform() * 39.99) })
    }()

    static var modules: [LinearModule] { HFNaming(config: config).linearModules }

    /// Reference covariance from recorded inputs, by the estimator's definition.
    static func reference(_ recorded: [(values: [Double], T: Int)], width n: Int, estimator: CovarianceEstimator) -> [Double] {
        var c = [Double](repeating: 0, count: n * n)
        var sequences = 0, tokens = 0
        for (values, T) in recorded {
            let count = values.count / (n * T)
            for b in 0..<count {
                let x = Array(values[(b * T * n)..<((b + 1) * T * n)])
                let m = estimator == .scaled ? (x.map(abs).max() ?? 1) : 1
                for t in 0..<T { for i in 0..<n { for j in 0..<n { c[i * n + j] += x[t * n + i] / m * x[t * n + j] / m } } }
                sequences += 1
                tokens += T
            }
        }
        let d = Double(estimator == .scaled ? sequences : tokens)
        return c.map { $0 / d }
    }

    func covariances(_ estimator: CovarianceEstimator, ranks: Int, r: Int = 3) throws -> [([[Double]], [[Double]], [[Float]], Int)] {
        let data = Self.data
        return try LocalCluster.run(size: ranks) { comm in
            let model = Self.model()
            let cov = InputCovariance(modules: Self.modules, estimator: estimator)
            model.linearInputObserver = cov
            data.forEachBatch(data.slice(rank: comm.rank, size: comm.size), batch: 2) { ids, B in model.forward(ids: ids, B: B, T: data.sequenceLength) }
            try cov.finish(communicator: comm)
            let bases = try NullSpaceBases.compute(cov, rank: r, communicator: comm)
            return (cov.sums, bases.map(\.eigenvalues), bases.map(\.basis.scalars), cov.sequences)
        }
    }

    @Test(arguments: [CovarianceEstimator.scaled, .plain])
    func covarianceAndSmallestEigenvectorsMatchIndependentComputation(_ estimator: CovarianceEstimator) throws {
        let model = Self.model()
        let recorder = InputRecorder()
        model.linearInputObserver = recorder
        Self.data.forEachBatch(0..<Self.data.count, batch: 3) { ids, B in model.forward(ids: ids, B: B, T: Self.data.sequenceLength) }
        let result = try covariances(estimator, ranks: 1)[0]
        let sites = InputSite.of(Self.modules)
        #expect(sites.count == 8)  // 2 layers × (qkv, o, gateUp, down)
        #expect(result.3 == 7)
        for (i, site) in sites.enumerated() {
            let n = site.width
            let ref = Self.reference(recorder.rows[site]!, width: n, estimator: estimator)
            let scale = ref.map(abs).max()!
            let worst = zip(ref, result.0[i]).map { abs($0 - $1) }.max()!
            #expect(worst <= 1e-12 * scale, "site \(site): covariance differs by \(worst) (scale \(scale))")
            // The three smallest eigenvalues, ascending, against Jacobi's; eigenvectors satisfy C·v = λ·v.
            let jacobi = jacobiEigenvalues(ref, n: n)
            let largest = jacobi.last!
            for k in 0..<3 {
                #expect(abs(result.1[i][k] - jacobi[k]) <= 1e-10 * largest, "site \(site): λ\(k) \(result.1[i][k]) vs Jacobi \(jacobi[k])")
                let v = Array(result.2[i][(k * n)..<((k + 1) * n)]).map(Double.init)
                var residual = 0.0
                for a in 0..<n {
                    var cv = 0.0
                    for b in 0..<n { cv += ref[a * n + b] * v[b] }
                    residual = max(residual, abs(cv - jacobi[k] * v[a]))
                }
                #expect(residual <= 1e-6 * largest, "site \(site): ‖C·v − λ·v‖∞ = \(residual)")
                #expect(abs(v.map { $0 * $0 }.reduce(0, +) - 1) < 1e-6)
            }
        }
    }

    @Test func oneTwoThreeRanksGiveTheSameStatistics() throws {
        let one = try covariances(.scaled, ranks: 1)[0]
        for ranks in [2, 3] {
            for result in try covariances(.scaled, ranks: ranks) {
                #expect(result.3 == one.3)
                for i in one.0.indices {
                    let scale = one.0[i].map(abs).max()!
                    #expect(zip(one.0[i], result.0[i]).allSatisfy { abs($0 - $1) <= 1e-13 * scale }, "np=\(ranks): covariance \(i)")
                    #expect(zip(one.1[i], result.1[i]).allSatisfy { abs($0 - $1) <= 1e-12 * scale }, "np=\(ranks): eigenvalues \(i)")
                    #expect(zip(one.2[i], result.2[i]).allSatisfy { abs($0 - $1) <= 1e-5 }, "np=\(ranks): eigenvectors \(i)")
                }
            }
        }
    }

    @Test func nonFiniteActivationIsAnErrorNamingTheModule() throws {
        let data = Self.data
        #expect {
            try LocalCluster.run(size: 2) { comm in
                let model = Self.model()
                var w = model.tensor(.layer(1, .norm2Weight))
                w.withUnsafeMutableBufferPointer { $0[0] = .infinity }
                model.setTensor(.layer(1, .norm2Weight), w)
                let cov = InputCovariance(modules: Self.modules, estimator: .scaled)
                model.linearInputObserver = cov
                data.forEachBatch(data.slice(rank: comm.rank, size: comm.size), batch: 2) { ids, B in model.forward(ids: ids, B: B, T: data.sequenceLength) }
                try cov.finish(communicator: comm)
            }
        } throws: { error in
            "\(error)".contains("non-finite") && "\(error)".contains("model.layers.1.mlp.gate_proj")
        }
    }
}
