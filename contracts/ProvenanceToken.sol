// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {IERC721Receiver} from "@openzeppelin/contracts/token/ERC721/IERC721Receiver.sol";
import {ERC2981} from "@openzeppelin/contracts/token/common/ERC2981.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {Base64} from "@openzeppelin/contracts/utils/Base64.sol";
import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";
import {ModelRegistry} from "./ModelRegistry.sol";

/// @notice ERC-7007 (Final): verifiable AI-generated content token.
interface IERC7007 is IERC165, IERC721 {
    event AigcData(uint256 indexed tokenId, bytes indexed prompt, bytes indexed aigcData, bytes proof);

    function addAigcData(uint256 tokenId, bytes calldata prompt, bytes calldata aigcData, bytes calldata proof)
        external;

    function verify(bytes calldata prompt, bytes calldata aigcData, bytes calldata proof)
        external
        view
        returns (bool success);
}

/// @title ProvenanceToken
/// @notice One token per proven inference. A token exists only if its proof verified on-chain
/// for a registered model; it records which model produced which outputs from which
/// (committed) input, and pays royalties to the model's owner. A batch proof (a circuit
/// proving `batchSize` inferences at once) mints one token per real inference in one
/// transaction; trailing padding items of a partial batch are not minted.
///
/// Storage is split so a batch pays once for what its tokens share: one `Proven` entry per
/// mint (circuit, proof, creator, ...) and two words per token (input commitment, outputs hash).
///
/// ERC-7007 encodings: prompt = abi.encode(circuitHash, inputCommitment);
/// aigcData = abi.encodePacked(the item's output instances);
/// proof = abi.encode(zkProof, instances, vka, index) (vka empty unless the model uses a
/// reusable verifier; index = the item's position in the batch, 0 for a single proof).
/// A mint publishes the proof once, in ProofPublished; each token's AigcData event carries
/// abi.encode(proofHash, index) as its proof, pointing at that event.
///
/// Input commitments: public input = keccak256 of the item's input instances; hashed input =
/// the proof's Poseidon hash (batch size 1) or keccak256(abi.encode(hash, index)) (a batch
/// shares one hash); private input = keccak256("").
///
/// Front-running: mint is the reveal of an earlier commit of
/// keccak256(abi.encode(minter, inferenceId, salt)), made in an earlier block. A proof copied
/// from a pending mint can't be minted by anyone else: they hold no such commitment, and
/// by the time they could make one, the inference is minted.
contract ProvenanceToken is ERC721, ERC2981, IERC7007 {
    using Strings for uint256;
    using Strings for address;

    /// What a token's view returns: its proof's shared fields and its own.
    struct Record {
        bytes32 circuitHash;
        bytes32 inferenceId;
        bytes32 inputCommitment;
        bytes32 outputsHash;
        bytes32 proofHash;
        address creator;
        uint64 mintedAt;
        uint256 parent;
        string proofURI;
        uint32 batchIndex;
        uint32 batchCount;
    }

    struct Proven {
        bytes32 circuitHash;
        bytes32 inferenceId;
        bytes32 proofHash;
        address creator;
        uint64 mintedAt;
        uint32 count;
        uint256 firstToken;
        uint256 parent;
        string proofURI;
    }

    struct Item {
        bytes32 inputCommitment;
        bytes32 outputsHash;
    }

    struct MintRequest {
        bytes32 circuitHash;
        address to;
        uint256 parent;
        bytes32 inputCommitment; // the item's commitment; for a batch, keccak256 of the items' ones
        bytes32 salt;
        string proofURI;
        uint32 count; // real inferences in the proof: 1 .. batchSize, padding after them
    }

    ModelRegistry public immutable registry;
    uint256 public totalMinted;
    Proven[] private _proofs; // ascending firstToken: a token's proof is found by binary search
    mapping(uint256 tokenId => Item) private _items;
    mapping(bytes32 inferenceId => uint256 tokenId) public tokenOfInference;
    mapping(bytes32 commitment => uint256 blockNumber) public commitments;

    event Committed(bytes32 indexed commitment, address indexed committer);
    event Minted(uint256 indexed tokenId, bytes32 indexed circuitHash, bytes32 indexed inferenceId, address creator, uint256 parent);
    event ProofPublished(uint256 indexed firstToken, bytes32 indexed proofHash, bytes zkProof, uint256[] instances, bytes32[] vka);

    error ProvenanceTokenAlreadyMinted(bytes32 inferenceId, uint256 tokenId);
    error ProvenanceTokenNoCommitment(bytes32 commitment);
    error ProvenanceTokenCommitTooRecent(bytes32 commitment, uint256 committedAt);
    error ProvenanceTokenInputMismatch(bytes32 expected, bytes32 proven);
    error ProvenanceTokenUnknownParent(uint256 parent);
    error ProvenanceTokenInstancesTooShort(uint256 length, uint256 needed);
    error ProvenanceTokenNotTokenOwner(uint256 tokenId, address caller);
    error ProvenanceTokenDataMismatch(uint256 tokenId);
    error ProvenanceTokenBadCount(uint32 count, uint32 batchSize);

    constructor(ModelRegistry registry_) ERC721("proofmint provenance", "PMINT") {
        registry = registry_;
    }

    // ---- commit / reveal mint ----

    /// @notice The commitment a minter publishes before revealing: binds minter, inference and salt.
    function commitmentFor(address minter, bytes32 inferenceId, bytes32 salt) public pure returns (bytes32) {
        return keccak256(abi.encode(minter, inferenceId, salt));
    }

    function inferenceIdOf(bytes32 circuitHash, uint256[] calldata instances) public pure returns (bytes32) {
        return keccak256(abi.encode(circuitHash, keccak256(abi.encodePacked(instances))));
    }

    function commit(bytes32 commitment) external {
        if (commitments[commitment] == 0) commitments[commitment] = block.number;
        emit Committed(commitment, msg.sender);
    }

    /// @notice Mint the tokens of a proof: one per real inference (`r.count`), consecutive ids.
    /// Requirements:
    /// - the caller committed to (caller, inferenceId, salt) in an earlier block;
    /// - the proof was never minted;
    /// - the proof verifies on-chain for the registered model;
    /// - 1 <= `r.count` <= the model's batch size;
    /// - `r.inputCommitment` equals the commitment of the proven input instances;
    /// - `parent` is 0 or an existing token.
    function mint(MintRequest calldata r, bytes calldata zkProof, uint256[] calldata instances, bytes32[] calldata vka)
        external
        returns (uint256 firstToken)
    {
        bytes32 inferenceId = inferenceIdOf(r.circuitHash, instances);
        if (tokenOfInference[inferenceId] != 0) {
            revert ProvenanceTokenAlreadyMinted(inferenceId, tokenOfInference[inferenceId]);
        }
        bytes32 c = commitmentFor(msg.sender, inferenceId, r.salt);
        uint256 at = commitments[c];
        if (at == 0) revert ProvenanceTokenNoCommitment(c);
        if (at >= block.number) revert ProvenanceTokenCommitTooRecent(c, at);
        if (r.parent != 0 && _ownerOf(r.parent) == address(0)) revert ProvenanceTokenUnknownParent(r.parent);

        registry.verifyInference(r.circuitHash, zkProof, instances, vka);
        ModelRegistry.Model memory m = registry.model(r.circuitHash);
        if (r.count == 0 || r.count > m.batchSize) revert ProvenanceTokenBadCount(r.count, m.batchSize);
        _checkLength(m, instances);
        delete commitments[c];

        firstToken = totalMinted + 1;
        totalMinted += r.count;
        tokenOfInference[inferenceId] = firstToken;
        bytes32 proofHash = keccak256(zkProof);
        _proofs.push(Proven({
            circuitHash: r.circuitHash,
            inferenceId: inferenceId,
            proofHash: proofHash,
            creator: msg.sender,
            mintedAt: uint64(block.timestamp),
            count: r.count,
            firstToken: firstToken,
            parent: r.parent,
            proofURI: r.proofURI
        }));
        emit ProofPublished(firstToken, proofHash, zkProof, instances, vka);
        bytes32 claimed = _mintItems(r, m, instances, inferenceId, firstToken, proofHash);
        if (claimed != r.inputCommitment) revert ProvenanceTokenInputMismatch(r.inputCommitment, claimed);
        _checkReceiver(r.to, firstToken);
    }

    /// Mints the proof's real items; returns the proof's input commitment (see MintRequest).
    function _mintItems(
        MintRequest calldata r,
        ModelRegistry.Model memory m,
        uint256[] memory instances,
        bytes32 inferenceId,
        uint256 firstToken,
        bytes32 proofHash
    ) private returns (bytes32) {
        bytes memory commitmentsPacked;
        for (uint256 i = 0; i < r.count; ++i) {
            bytes32 input = _inputCommitment(m, instances, i);
            commitmentsPacked = abi.encodePacked(commitmentsPacked, input);
            bytes memory outputs = _outputs(m, instances, i);
            uint256 tokenId = firstToken + i;
            _items[tokenId] = Item(input, keccak256(outputs));
            _mint(r.to, tokenId);
            emit Minted(tokenId, r.circuitHash, inferenceId, msg.sender, r.parent);
            emit AigcData(tokenId, abi.encode(r.circuitHash, input), outputs, abi.encode(proofHash, i));
        }
        return m.batchSize == 1 ? bytes32(commitmentsPacked) : keccak256(commitmentsPacked);
    }

    function record(uint256 tokenId) external view returns (Record memory) {
        _requireOwned(tokenId);
        Proven storage p = _proofs[_proofIndex(tokenId)];
        Item storage it = _items[tokenId];
        return Record({
            circuitHash: p.circuitHash,
            inferenceId: p.inferenceId,
            inputCommitment: it.inputCommitment,
            outputsHash: it.outputsHash,
            proofHash: p.proofHash,
            creator: p.creator,
            mintedAt: p.mintedAt,
            parent: p.parent,
            proofURI: p.proofURI,
            batchIndex: uint32(tokenId - p.firstToken),
            batchCount: p.count
        });
    }

    // ---- ERC-7007 ----

    /// @notice Re-attach AIGC data to an existing token (the owner only); it must verify and
    /// match the token's recorded inference.
    function addAigcData(uint256 tokenId, bytes calldata prompt, bytes calldata aigcData, bytes calldata proof)
        external
    {
        if (ownerOf(tokenId) != msg.sender) revert ProvenanceTokenNotTokenOwner(tokenId, msg.sender);
        Proven storage p = _proofs[_proofIndex(tokenId)];
        Item storage it = _items[tokenId];
        (bytes32 circuitHash, bytes32 inputCommitment) = abi.decode(prompt, (bytes32, bytes32));
        (,,, uint256 index) = abi.decode(proof, (bytes, uint256[], bytes32[], uint256));
        if (
            circuitHash != p.circuitHash || inputCommitment != it.inputCommitment || index != tokenId - p.firstToken
                || keccak256(aigcData) != it.outputsHash || !this.verify(prompt, aigcData, proof)
        ) revert ProvenanceTokenDataMismatch(tokenId);
        emit AigcData(tokenId, prompt, aigcData, proof);
    }

    /// @notice True when `proof` verifies for the model in `prompt` and its instances carry,
    /// at the item `index` in `proof`, exactly that input commitment and those outputs.
    function verify(bytes calldata prompt, bytes calldata aigcData, bytes calldata proof)
        external
        view
        returns (bool success)
    {
        (bytes32 circuitHash, bytes32 inputCommitment) = abi.decode(prompt, (bytes32, bytes32));
        (bytes memory zkProof, uint256[] memory instances, bytes32[] memory vka, uint256 index) =
            abi.decode(proof, (bytes, uint256[], bytes32[], uint256));
        if (!registry.isRegistered(circuitHash)) return false;
        ModelRegistry.Model memory m = registry.model(circuitHash);
        if (index >= m.batchSize || instances.length < _needed(m)) return false;
        return _inputCommitment(m, instances, index) == inputCommitment
            && keccak256(_outputs(m, instances, index)) == keccak256(aigcData)
            && registry.checkInference(circuitHash, zkProof, instances, vka);
    }

    // ---- royalties (ERC-2981): always the model's registered owner ----

    function royaltyInfo(uint256 tokenId, uint256 salePrice) public view override returns (address, uint256) {
        ModelRegistry.Model memory m = registry.model(_proofs[_proofIndex(tokenId)].circuitHash);
        return (m.owner, (salePrice * m.royaltyBps) / 10_000);
    }

    // ---- metadata ----

    function tokenURI(uint256 tokenId) public view override returns (string memory) {
        _requireOwned(tokenId);
        Proven memory p = _proofs[_proofIndex(tokenId)];
        Item memory it = _items[tokenId];
        ModelRegistry.Model memory m = registry.model(p.circuitHash);
        bytes memory json = abi.encodePacked(
            '{"name":"proofmint #', tokenId.toString(),
            '","description":"A verified AI inference: its EZKL proof was checked on-chain.","model_id":"',
            uint256(m.onnxHash).toHexString(32), '","circuit_id":"', uint256(p.circuitHash).toHexString(32),
            '","input_commitment":"', uint256(it.inputCommitment).toHexString(32),
            '","outputs_hash":"', uint256(it.outputsHash).toHexString(32)
        );
        json = abi.encodePacked(
            json, '","proof_hash":"', uint256(p.proofHash).toHexString(32), '","proof_uri":"', p.proofURI,
            '","verifier":"', m.verifier.toHexString(), '","chain_id":', block.chainid.toString(),
            ',"batch_index":', (tokenId - p.firstToken).toString(), ',"batch_count":', uint256(p.count).toString()
        );
        json = abi.encodePacked(
            json, ',"parent":', p.parent.toString(), ',"creator":"', p.creator.toHexString(), '"}'
        );
        return string.concat("data:application/json;base64,", Base64.encode(json));
    }

    function supportsInterface(bytes4 interfaceId) public view override(ERC721, ERC2981, IERC165) returns (bool) {
        return interfaceId == type(IERC7007).interfaceId || super.supportsInterface(interfaceId);
    }

    // ---- internals ----

    /// The index in `_proofs` of the mint that created `tokenId` (which exists).
    function _proofIndex(uint256 tokenId) internal view returns (uint256 lo) {
        uint256 hi = _proofs.length;
        while (hi - lo > 1) {
            uint256 mid = (lo + hi) / 2;
            if (_proofs[mid].firstToken <= tokenId) lo = mid;
            else hi = mid;
        }
    }

    /// ERC721's receiver check, once per mint: `_safeMint` per token would call a contract
    /// recipient `count` times for one decision.
    function _checkReceiver(address to, uint256 tokenId) private {
        if (to.code.length == 0) return;
        try IERC721Receiver(to).onERC721Received(msg.sender, address(0), tokenId, "") returns (bytes4 ret) {
            if (ret != IERC721Receiver.onERC721Received.selector) revert ERC721InvalidReceiver(to);
        } catch {
            revert ERC721InvalidReceiver(to);
        }
    }

    function _needed(ModelRegistry.Model memory m) private pure returns (uint256) {
        uint256 inputs = m.inputHashed ? m.inputCount : uint256(m.inputCount) * m.batchSize;
        uint256 outputsEnd = uint256(m.outputStart) + uint256(m.outputCount) * m.batchSize;
        uint256 inputsEnd = uint256(m.inputStart) + inputs;
        return outputsEnd > inputsEnd ? outputsEnd : inputsEnd;
    }

    function _checkLength(ModelRegistry.Model memory m, uint256[] calldata instances) private pure {
        uint256 needed = _needed(m);
        if (instances.length < needed) revert ProvenanceTokenInstancesTooShort(instances.length, needed);
    }

    function _inputCommitment(ModelRegistry.Model memory m, uint256[] memory instances, uint256 index)
        internal
        pure
        returns (bytes32)
    {
        if (m.inputHashed) {
            bytes32 hash = bytes32(instances[m.inputStart]);
            return m.batchSize == 1 ? hash : keccak256(abi.encode(hash, index));
        }
        return keccak256(abi.encodePacked(_slice(instances, m.inputStart + index * m.inputCount, m.inputCount)));
    }

    function _outputs(ModelRegistry.Model memory m, uint256[] memory instances, uint256 index)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodePacked(_slice(instances, m.outputStart + index * m.outputCount, m.outputCount));
    }

    function _slice(uint256[] memory a, uint256 start, uint256 count) private pure returns (uint256[] memory out) {
        out = new uint256[](count);
        for (uint256 i = 0; i < count; ++i) out[i] = a[start + i];
    }
}
