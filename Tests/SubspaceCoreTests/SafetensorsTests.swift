import Foundation
import Testing
@testable import SubspaceCore

@Suite struct SafetensorsTests {
    /// A file with every dtype, a zero-size tensor, a scalar and metadata.
    func sampleWriter() -> (SafetensorsWriter, [String: Tensor]) {
        var rng = RandomStream(seed: 77)
        var writer = SafetensorsWriter(metadata: ["format": "pt", "note": "héllo \"quoted\""])
        let f32 = Tensor.normal([3, 5], using: &rng)
        let f16 = Tensor.normal([7], using: &rng)
        let bf16 = Tensor.normal([2, 2, 3], using: &rng)
        writer.add("layer.0/weight", f32)
        writer.add("half", f16, as: .f16)
        writer.add("brain", bf16, as: .bf16)
        writer.add("empty", Tensor(zeros: [0, 4]))
        writer.add("scalar", Tensor(shape: [], values: [3.5]))
        writer.add("ids", integers: [1, -2, 1 << 40], shape: [3])
        writer.add("ids32", integers: [7, -8], shape: [1, 2], as: .i32)
        return (writer, ["layer.0/weight": f32, "half": f16, "brain": bf16])
    }

    @Test func roundTripEveryDType() throws {
        let folder = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let (writer, originals) = sampleWriter()
        let path = folder + "/sample.safetensors"
        try writer.write(to: path)

        let file = try SafetensorsFile(path: path)
        #expect(file.metadata == ["format": "pt", "note": "héllo \"quoted\""])
        #expect(Set(file.names) == ["layer.0/weight", "half", "brain", "empty", "scalar", "ids", "ids32"])
        #expect(try file.tensor("layer.0/weight") == originals["layer.0/weight"]!)  // f32 is exact
        // f16 / bf16: exactly the rounded values.
        let half = try file.tensor("half").scalars
        #expect(half == originals["half"]!.scalars.map { Float(Float16($0)) })
        let brain = try file.tensor("brain")
        #expect(brain.shape == [2, 2, 3])
        #expect(brain.scalars == originals["brain"]!.scalars.map { HalfPrecision.float(fromBF16: HalfPrecision.bf16(from: $0)) })
        expectClose(brain.scalars, originals["brain"]!.scalars, rtol: 1.0 / 128, atol: 0, "bf16 precision")
        #expect(try file.tensor("empty").shape == [0, 4])
        #expect(try file.tensor("scalar").scalars == [3.5])
        #expect(try file.integers("ids").values == [1, -2, 1 << 40])
        #expect(try file.integers("ids32") == (shape: [1, 2], values: [7, -8]))

        // Header is padded so the data section is 8-byte aligned.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        #expect((8 + n) % 8 == 0)
    }

    @Test func wrongKindOfReadIsATypedError() throws {
        let folder = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try sampleWriter().0.write(to: folder + "/s.safetensors")
        let file = try SafetensorsFile(path: folder + "/s.safetensors")
        #expect { try file.tensor("ids") } throws: { ($0 as? SafetensorsError)?.kind == .dtype }
        #expect { try file.integers("half") } throws: { ($0 as? SafetensorsError)?.kind == .dtype }
        #expect { try file.tensor("nope") } throws: { e in
            let e = e as? SafetensorsError
            return e?.kind == .missingTensor && e?.tensor == "nope" && e!.description.contains("s.safetensors")
        }
        #expect { try SafetensorsFile(path: folder + "/missing.safetensors") } throws: { ($0 as? SafetensorsError)?.kind == .io }
    }

    @Test func bf16Rounding() {
        #expect(HalfPrecision.bf16(from: 1.0) == 0x3F80)
        #expect(HalfPrecision.bf16(from: Float(bitPattern: 0x3F80_8000)) == 0x3F80)  // tie → even
        #expect(HalfPrecision.bf16(from: Float(bitPattern: 0x3F81_8000)) == 0x3F82)  // tie → even (up)
        #expect(HalfPrecision.bf16(from: Float(bitPattern: 0x3F80_8001)) == 0x3F81)
        #expect(HalfPrecision.float(fromBF16: HalfPrecision.bf16(from: .nan)).isNaN)
        #expect(HalfPrecision.float(fromBF16: HalfPrecision.bf16(from: .infinity)) == .infinity)
        #expect(HalfPrecision.float(fromF16: HalfPrecision.f16(from: 65536)) == .infinity)
    }

    /// Hand-made headers, one per rule, each rejected with the right kind and the tensor named.
    @Test func invalidHeadersAreRejected() throws {
        let folder = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        func file(_ header: String, data: Int) -> String {
            var bytes = [UInt8]()
            let h = Array(header.utf8)
            withUnsafeBytes(of: UInt64(h.count).littleEndian) { bytes += $0 }
            bytes += h
            bytes += [UInt8](repeating: 0, count: data)
            let path = folder + "/\(UUID().uuidString).safetensors"
            FileManager.default.createFile(atPath: path, contents: Data(bytes))
            return path
        }
        let cases: [(String, Int, SafetensorsError.Kind, String?)] = [
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 8, .header, nil),  // control: valid
            (#"["not an object"]"#, 0, .header, nil),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#, 8, .header, nil),  // truncated JSON
            (#"{"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#, 8, .dtype, "a"),
            (#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, 8, .entry, "a"),
            (#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, 8, .entry, "a"),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}}"#, 8, .entry, "a"),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, 8, .entry, "a"),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 4, .entry, "a"),    // past the end
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 12, .entry, nil),   // trailing bytes
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, 12, .entry, "b"),
            (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, 8, .entry, "a"),  // hole at the start
            (#"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#, 8, .entry, "a"),
            (#"{"a":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}"#, 8, .header, nil),
            (#"{"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}"#, 8, .header, nil),
            (#"{"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 8, .header, nil),
            (#"{"a":{"shape":[2],"data_offsets":[0,8]}}"#, 8, .header, nil),
        ]
        for (i, (header, data, kind, tensor)) in cases.enumerated() {
            let path = file(header, data: data)
            if i == 0 {
                #expect(try SafetensorsFile(path: path).tensor("a").shape == [2])
                continue
            }
            do {
                _ = try SafetensorsFile(path: path)
                Issue.record("case \(i) was accepted: \(header)")
            } catch let error as SafetensorsError {
                #expect(error.kind == kind, "case \(i): \(error)")
                if let tensor { #expect(error.tensor == tensor, "case \(i): \(error)") }
                #expect(error.file == path)
            }
        }
        // Length field problems.
        for bytes: [UInt8] in [[], [1, 0, 0], [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0x7B], [4, 0, 0, 0, 0, 0, 0, 0, 0x7B, 0x7D]] {
            let path = folder + "/len-\(bytes.count).safetensors"
            FileManager.default.createFile(atPath: path, contents: Data(bytes))
            #expect { try SafetensorsFile(path: path) } throws: { ($0 as? SafetensorsError)?.kind == .header }
        }
    }

    /// Hundreds of randomly corrupted or truncated copies of a valid file: each must either be rejected
    /// with a SafetensorsError or read back exactly what its own bytes say (checked by an independent
    /// decoder below), and never crash.
    @Test func corruptedFilesNeverCrash() throws {
        let folder = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let valid = folder + "/valid.safetensors"
        try sampleWriter().0.write(to: valid)
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: valid)))
        let headerLength = Int(original.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })

        var rng = RandomStream(seed: 2024)
        var rejected = 0, accepted = 0
        for trial in 0..<600 {
            var bytes = original
            switch trial % 5 {
            case 0:  // truncate anywhere
                bytes.removeLast(1 + rng.nextInt(below: bytes.count - 1))
            case 1:  // flip bytes inside the header
                for _ in 0..<(1 + rng.nextInt(below: 4)) {
                    bytes[8 + rng.nextInt(below: headerLength)] = UInt8(truncatingIfNeeded: rng.nextWord())
                }
            case 2:  // flip bytes anywhere, including the length field
                for _ in 0..<(1 + rng.nextInt(below: 6)) {
                    bytes[rng.nextInt(below: bytes.count)] = UInt8(truncatingIfNeeded: rng.nextWord())
                }
            case 3:  // flip bytes in the data section only: always a valid file with other values
                for _ in 0..<(1 + rng.nextInt(below: 8)) {
                    let at = 8 + headerLength + rng.nextInt(below: bytes.count - 8 - headerLength)
                    bytes[at] = UInt8(truncatingIfNeeded: rng.nextWord())
                }
            default:  // replace a digit in the header by another digit (keeps the JSON valid more often)
                let digits = (8..<(8 + headerLength)).filter { (48...57).contains(bytes[$0]) }
                let at = digits[rng.nextInt(below: digits.count)]
                bytes[at] = UInt8(48 + rng.nextInt(below: 10))
                if rng.nextInt(below: 2) == 0 { bytes.removeLast(rng.nextInt(below: 16)) }
            }
            let path = folder + "/trial-\(trial).safetensors"
            FileManager.default.createFile(atPath: path, contents: Data(bytes))
            defer { try? FileManager.default.removeItem(atPath: path) }
            do {
                let file = try SafetensorsFile(path: path)
                for info in file.entries {
                    let expected = try #require(independentDecode(bytes, info: info, headerLength: file.dataStart - 8))
                    switch info.dtype {
                    case .i32, .i64: #expect(try file.integers(info.name).values.map(Double.init) == expected)
                    default:
                        let got = try file.tensor(info.name).scalars
                        #expect(got.count == expected.count)
                        #expect(zip(got, expected).allSatisfy { $0.bitPattern == Float($1).bitPattern || ($0.isNaN && $1.isNaN) })
                    }
                }
                accepted += 1
            } catch is SafetensorsError {
                rejected += 1
            }
        }
        #expect(rejected > 100 && accepted > 50, "rejected \(rejected), accepted \(accepted): the trials should exercise both outcomes")
    }

    /// Decodes a tensor straight from the bytes, trusting the already-validated entry.
    func independentDecode(_ bytes: [UInt8], info: TensorInfo, headerLength: Int) -> [Double]? {
        let start = 8 + headerLength + info.dataOffsets.lowerBound
        guard start + info.dataOffsets.count <= bytes.count else { return nil }
        func word(_ at: Int, _ size: Int) -> UInt64 {
            (0..<size).reduce(UInt64(0)) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) }
        }
        return (0..<info.count).map { i in
            let at = start + i * info.dtype.byteSize
            switch info.dtype {
            case .f32: return Double(Float(bitPattern: UInt32(word(at, 4))))
            case .f16: return Double(Float(Float16(bitPattern: UInt16(word(at, 2)))))
            case .bf16: return Double(Float(bitPattern: UInt32(word(at, 2)) << 16))
            case .i32: return Double(Int32(bitPattern: UInt32(word(at, 4))))
            case .i64: return Double(Int64(bitPattern: word(at, 8)))
            }
        }
    }

    @Test func shardedFolderRoundTrip() throws {
        let folder = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var rng = RandomStream(seed: 3)
        let tensors = (0..<5).map { (name: "layers.\($0).weight", tensor: Tensor.normal([16, 16], using: &rng)) }
        // 1 KiB each; shards of at most 2.5 KiB → 3 shards.
        try TensorFolder.write(tensors, to: folder, maxShardBytes: 2560)
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        #expect(files == ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                          "model-00003-of-00003.safetensors", "model.safetensors.index.json"])
        let loaded = try TensorFolder(folder: folder)
        #expect(loaded.names == tensors.map(\.name).sorted())
        for (name, tensor) in tensors { #expect(try loaded.tensor(name) == tensor) }
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/model.safetensors.index.json"))) as! [String: Any]
        #expect((index["metadata"] as! [String: Any])["total_size"] as? Int == 5 * 1024)

        // Writing again as one file replaces the index.
        try TensorFolder.write(tensors, to: folder, dtype: .bf16)
        let single = try TensorFolder(folder: folder)
        #expect(single.names.count == 5)
        #expect(try single.info("layers.0.weight").dtype == .bf16)
        #expect(!FileManager.default.fileExists(atPath: folder + "/model.safetensors.index.json"))
    }

    @Test func badIndexesAreRejected() throws {
        let folder = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var w = SafetensorsWriter()
        w.add("a", Tensor(zeros: [2]))
        try w.write(to: folder + "/shard.safetensors")
        let cases: [(String, SafetensorsError.Kind)] = [
            (#"{"weight_map": {"a": "shard.safetensors", "b": "shard.safetensors"}}"#, .index),
            (#"{"weight_map": {"a": "../shard.safetensors"}}"#, .index),
            (#"{"weight_map": {"a": "other.safetensors"}}"#, .io),
            (#"{"weights": {}}"#, .index),
            (#"not json"#, .index),
        ]
        for (json, kind) in cases {
            try json.write(toFile: folder + "/model.safetensors.index.json", atomically: true, encoding: .utf8)
            #expect(performing: { try TensorFolder(folder: folder) }, throws: { e in
                (e as? SafetensorsError)?.kind == kind
            })
        }
        try FileManager.default.removeItem(atPath: folder + "/model.safetensors.index.json")
        #expect { try TensorFolder(folder: folder) } throws: { ($0 as? SafetensorsError)?.kind == .io }
    }

    /// The reference files shipped in ../shared/fixtures, checked against values read with Python's
    /// struct module from the raw bytes.
    @Test func readsTheFixtures() throws {
        let root = fixturesFolder()
        let gpt2 = try TensorFolder(folder: root + "/gpt2-tiny")
        #expect(gpt2.names.count == 28)
        let wte = try gpt2.tensor("transformer.wte.weight")
        #expect(wte.shape == [256, 48])
        #expect(Array(wte.scalars.prefix(4)) == [0.03666442632675171, -0.010669795796275139, 0.024798478931188583, 0.00966759491711855])
        let proj = try gpt2.tensor("transformer.h.1.mlp.c_proj.weight")
        #expect(proj.shape == [192, 48] && Array(proj.scalars.suffix(2)) == [-0.0054816291667521, -0.01741301268339157])
        #expect(gpt2.metadata["format"] == "pt")

        let reference = try SafetensorsFile(path: root + "/gpt2-tiny/reference.safetensors")
        let ids = try reference.integers("input_ids")
        #expect(ids.shape == [2, 24] && Array(ids.values.prefix(4)) == [85, 50, 158, 84])
        #expect(try reference.tensor("logits").shape == [2, 24, 256])

        let play = try SafetensorsFile(path: root + "/bpe-tokenizer/long_text_ids.safetensors")
        let playIDs = try play.integers("ids")
        #expect(playIDs.shape == [102995] && Array(playIDs.values.prefix(4)) == [3, 454, 386, 312])

        for (folder, file, count) in [("llama-tiny", "model.safetensors", 21), ("llama-tiny-lora", "adapter_model.safetensors", 28),
                                      ("llama-tiny-pissa", "pissa_init.safetensors", 24)] {
            let f = try TensorFolder(folder: root + "/" + folder, file: file)
            #expect(f.names.count >= count - 1, "\(folder)/\(file)")
            for name in f.names { _ = try f.tensor(name) }
        }
    }

    /// A fixture re-written here reads back identical.
    @Test func rewritingAFixtureIsLossless() throws {
        let folder = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let source = try TensorFolder(folder: fixturesFolder() + "/llama-tiny")
        let tensors = try source.names.map { (name: $0, tensor: try source.tensor($0)) }
        try TensorFolder.write(tensors, to: folder)
        let copy = try TensorFolder(folder: folder)
        #expect(copy.names == source.names)
        for (name, t) in tensors { #expect(try copy.tensor(name) == t) }
    }
}
