import Foundation
import Testing
import SubspaceCore
import SubspaceModel
@testable import SubspaceAnalysis

/// A folder under the temporary directory for one test, removed with everything in it when the test
/// lets go of it.
final class Scratch: @unchecked Sendable {
    let root: String

    init() {
        root = (NSTemporaryDirectory() as NSString).appendingPathComponent("subspace-analysis-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    /// A fresh empty folder inside the scratch root.
    func folder(_ label: String) -> String {
        let path = (root as NSString).appendingPathComponent("\(label)-\(UUID().uuidString.prefix(8))")
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

enum Fixture {
    static let llama = ModelConfig(family: .llama, vocabularySize: 40, hiddenSize: 16, layerCount: 2, headCount: 2,
                                   keyValueHeadCount: 1, intermediateSize: 24, maxPositions: 16)
    static let gpt2 = ModelConfig(family: .gpt2, vocabularySize: 40, hiddenSize: 16, layerCount: 2, headCount: 2,
                                  maxPositions: 16)
    /// Prescribed singular values of every module's ΔW (the rest are zero).
    static let sigma: [Float] = [4, 2, 1, 0.5, 0.25]

    /// U·diag(s)·Vᵀ [m, n] with random orthonormal U [m, k], V [n, k].
    static func prescribed(_ s: [Float], m: Int, n: Int, seed: UInt64) -> Tensor {
        var rng = RandomStream(seed: seed)
        var u = try! LAPACK.qr(Tensor.normal([m, s.count], using: &rng)).q
        let v = try! LAPACK.qr(Tensor.normal([n, s.count], using: &rng)).q
        let k = s.count
        u.withUnsafeMutableBufferPointer { p in for i in 0..<m { for j in 0..<k { p[i * k + j] *= s[j] } } }
        return BLAS.matmul(u, v, transB: .transposed)
    }

    /// Adds `delta` [out, in] to a module's weights (its parts are stacked along out).
    static func add(_ delta: Tensor, to module: LinearModule, of model: Transformer) {
        var row = 0
        for part in module.parts {
            let role = TensorRole.layer(module.layer, part)
            let w = model.tensor(role)
            let rows = w.shape[0]
            let slice = Tensor(shape: w.shape, values: delta.view(offset: row * module.inFeatures, shape: w.shape).scalars)
            model.setTensor(role, w + slice)
            row += rows
        }
    }

    struct Folders {
        let base: String
        let tuned: String
        /// ΔW per module path, [out, in], as prescribed.
        let deltas: [String: Tensor]
        let config: ModelConfig
    }

    /// Base and tuned HF folders where every module's ΔW = U·diag(spectrum(i))·Vᵀ and the final norm
    /// weight changes by `normChange` in every element.
    static func folders(in scratch: Scratch, _ config: ModelConfig, spectrum: (Int) -> [Float] = { _ in sigma }, normChange: Float = 0.01,
                        label: String = "model") throws -> Folders {
        let root = scratch.folder(label)
        let base = Transformer(config: config)
        base.initialize(seed: 3)
        let basePath = (root as NSString).appendingPathComponent("base")
        try HFCheckpoint.save(base, to: basePath)

        let tuned = Transformer(config: config)
        tuned.initialize(seed: 3)
        var deltas: [String: Tensor] = [:]
        for (i, m) in HFNaming(config: config).linearModules.enumerated() {
            let s = spectrum(i)
            let d = s.isEmpty ? Tensor(zeros: [m.outFeatures, m.inFeatures])
                              : prescribed(s, m: m.outFeatures, n: m.inFeatures, seed: 100 + UInt64(i))
            add(d, to: m, of: tuned)
            deltas[m.path] = d
        }
        let norm = tuned.tensor(.finalNormWeight)
        tuned.setTensor(.finalNormWeight, norm + Tensor(repeating: normChange, shape: norm.shape))
        let tunedPath = (root as NSString).appendingPathComponent("tuned")
        try HFCheckpoint.save(tuned, to: tunedPath)
        return Folders(base: basePath, tuned: tunedPath, deltas: deltas, config: config)
    }
}

/// Passes when |a − e| ≤ tolerance · max(1, |e|).
func expectClose(_ actual: Double?, _ expected: Double?, _ tolerance: Double = 1e-5, _ what: String,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    guard let actual, let expected else {
        #expect(actual == nil && expected == nil, "\(what): \(String(describing: actual)) vs \(String(describing: expected))",
                sourceLocation: sourceLocation)
        return
    }
    #expect(abs(actual - expected) <= tolerance * max(1, abs(expected)), "\(what): \(actual) vs \(expected)",
            sourceLocation: sourceLocation)
}

/// Well-formed XML, checked by libxml2 through FoundationXML's parser.
func xmlProblem(_ text: String) -> String? {
    #if canImport(FoundationXML)
    let parser = FoundationXML.XMLParser(data: Data(text.utf8))
    #else
    let parser = XMLParser(data: Data(text.utf8))
    #endif
    let collector = ElementCollector()
    parser.delegate = collector
    if parser.parse() { return collector.root == "svg" ? nil : "root element is \(collector.root ?? "none")" }
    return parser.parserError.map { "\($0)" } ?? "not well-formed"
}

#if canImport(FoundationXML)
import FoundationXML
#endif

final class ElementCollector: NSObject, XMLParserDelegate {
    var root: String?
    var names: [String] = []
    func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]) {
        if root == nil { root = elementName }
        names.append(elementName)
    }
}
