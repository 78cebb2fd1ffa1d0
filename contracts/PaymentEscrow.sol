// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IServerStatus} from "./interfaces/IServerStatus.sol";

/// @title PaymentEscrow
/// @notice Clients deposit the chain's native currency, set aside part of it for each server
///         they use (a "lane": one transaction for any number of servers) and pay off chain with
///         cumulative EIP-712 vouchers: "client owes server `cumulative` wei in total, for the
///         receipts hashed into `receipts`". A server redeems its newest voucher of each client
///         (many clients in one transaction) and is paid the part not redeemed yet, at most what
///         the client's lane for it holds. A protocol fee on every redemption funds the audit
///         pool, from which the audit payer (the DisputeCourt, or an owner-set keeper) credits
///         drawn auditors whatever the verdict.
/// @dev Invariant: address(this).balance == totalDeposits + totalEarned + auditPool, where
///      totalDeposits counts unallocated balances and every lane.
///      A lane is a server's alone, so a client cannot pay two servers with the same wei: a
///      voucher within the lane is covered. The unallocated balance can be withdrawn at once; a
///      lane is reclaimed in two steps (announce, then after `reclaimDelay` take the rest), and
///      redemption stays open during the delay, so a server that redeems within the delay is
///      never cheated out of a voucher it holds. Servers' and auditors' balances (`earned`) are
///      pull payments: withdrawn, or moved into the holder's own deposit to pay as a client.
///      Only servers that are Active in the ServerRegistry can set a price or redeem: a server
///      deactivated by a slash (or that left) is paid again only once it is registered again,
///      and its clients may reclaim in the meantime (its vouchers stay valid, never consumed).
///      Plain-storage reentrancy guard (no transient storage), so it deploys on chains without
///      EIP-1153.
contract PaymentEscrow is EIP712, Ownable2Step, ReentrancyGuard {
    struct Voucher {
        address client; // who pays (signs)
        address server; // the operator address paid (as registered in ServerRegistry)
        uint256 cumulative; // total wei owed to `server` by `client`, ever
        bytes32 receipts; // hash chain of the digests of the receipts paid for
    }

    struct Lane {
        uint128 amount; // set aside for one server, what its vouchers can still take
        uint128 redeemed; // cumulative wei the server has redeemed from this client
        uint128 reclaimAmount; // announced for reclaim (0 = none)
        uint64 reclaimAt; // when the announced amount may be taken
    }

    struct Terms {
        uint128 price; // wei per block per token
        uint128 creditLimit; // wei a session may fall behind before the server stops serving it
    }

    bytes32 public constant VOUCHER_TYPEHASH =
        keccak256("Voucher(address client,address server,uint256 cumulative,bytes32 receipts)");
    uint16 public constant MAX_FEE_BPS = 1_000; // 10 %
    uint64 public constant MIN_RECLAIM_DELAY = 5 minutes;
    uint64 public constant MAX_RECLAIM_DELAY = 30 days;

    IServerStatus public immutable registry;

    uint16 public feeBps;
    uint64 public reclaimDelay;
    address public auditPayer;

    uint256 public totalDeposits;
    uint256 public totalEarned;
    uint256 public auditPool;

    /// @notice A client's unallocated deposit (withdrawable at once, or allocated to lanes).
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => Lane)) private _lanes; // client => server => lane
    mapping(address => Terms) private _terms;
    /// @notice Withdrawable (or spendable) earnings and audit credits.
    mapping(address => uint256) public earned;

    error PaymentEscrow_ZeroAmount();
    error PaymentEscrow_ZeroAddress();
    error PaymentEscrow_FeeOutOfBounds(uint256 feeBps, uint256 maxFeeBps);
    error PaymentEscrow_DelayOutOfBounds(uint256 delay);
    error PaymentEscrow_NotActiveServer(address server);
    error PaymentEscrow_EmptyBatch();
    error PaymentEscrow_LengthMismatch(uint256 first, uint256 second); // two arrays that must pair up
    error PaymentEscrow_NotVoucherServer(address server, address caller);
    error PaymentEscrow_BadSignature(address client, address server);
    error PaymentEscrow_FeeAboveLimit(uint256 feeBps, uint256 maxFeeBps);
    error PaymentEscrow_NothingToRedeem(address server);
    error PaymentEscrow_InsufficientEarned(uint256 available, uint256 requested);
    error PaymentEscrow_InsufficientBalance(uint256 available, uint256 requested);
    error PaymentEscrow_NoReclaimAnnounced(address client, address server);
    error PaymentEscrow_ReclaimLocked(uint64 reclaimAt, uint256 now_);
    error PaymentEscrow_NothingToWithdraw(address account);
    error PaymentEscrow_NotAuditPayer(address caller);
    error PaymentEscrow_RenounceDisabled();

    event Deposited(address indexed client, address indexed from, uint256 amount, uint256 balance);
    event Allocated(address indexed client, address indexed server, uint256 amount, uint256 lane);
    event DepositWithdrawn(address indexed client, uint256 amount);
    event ReclaimAnnounced(address indexed client, address indexed server, uint256 amount, uint64 reclaimAt);
    event ReclaimCancelled(address indexed client, address indexed server);
    event Reclaimed(address indexed client, address indexed server, uint256 amount);
    event VoucherRedeemed(
        address indexed client, address indexed server, uint256 cumulative, uint256 paid, bytes32 receipts
    );
    event VoucherSkipped(address indexed client, address indexed server, uint256 cumulative);
    event BatchRedeemed(address indexed server, uint256 vouchers, uint256 gross, uint256 fee);
    event Withdrawn(address indexed account, uint256 amount);
    event EarnedSpent(address indexed account, uint256 amount, uint256 balance);
    event AuditPoolFunded(address indexed from, uint256 amount);
    event AuditorCredited(address indexed auditor, uint256 amount);
    event PriceSet(address indexed server, uint128 price, uint128 creditLimit);
    event FeeChanged(uint16 feeBps);
    event ReclaimDelayChanged(uint64 reclaimDelay);
    event AuditPayerChanged(address auditPayer);

    /// @param registry_ The ServerRegistry (read only: who is an Active server).
    /// @param feeBps_ Protocol fee on redemptions, in basis points (0 .. MAX_FEE_BPS).
    /// @param reclaimDelay_ Seconds between announcing a reclaim and taking it (bounded).
    /// @param owner_ Governance: tunes the fee, the delay and the audit payer within bounds.
    constructor(IServerStatus registry_, uint16 feeBps_, uint64 reclaimDelay_, address owner_)
        EIP712("PollenPaymentEscrow", "1")
        Ownable(owner_)
    {
        if (address(registry_) == address(0)) revert PaymentEscrow_ZeroAddress();
        registry = registry_;
        _setFee(feeBps_);
        _setReclaimDelay(reclaimDelay_);
    }

    // ------------------------------------------------------------------ clients

    /// @notice Add the sent value to the caller's unallocated deposit.
    function deposit() external payable {
        _credit(msg.sender);
    }

    /// @notice Add the sent value to `client`'s unallocated deposit (a sponsor paying for someone).
    /// @param client Whose deposit grows.
    function depositFor(address client) external payable {
        if (client == address(0)) revert PaymentEscrow_ZeroAddress();
        _credit(client);
    }

    /// @notice Set aside `amounts[i]` of the caller's deposit (plus any value sent, added to it
    ///         first) for `servers[i]`: only that server's vouchers can take it.
    /// @param servers Servers to pay (operator addresses).
    /// @param amounts Wei for each.
    function allocate(address[] calldata servers, uint256[] calldata amounts) external payable {
        if (servers.length != amounts.length) revert PaymentEscrow_LengthMismatch(servers.length, amounts.length);
        if (msg.value != 0) _credit(msg.sender);
        uint256 total;
        for (uint256 i; i < amounts.length; ++i) total += amounts[i];
        uint256 available = balanceOf[msg.sender];
        if (total > available) revert PaymentEscrow_InsufficientBalance(available, total);
        balanceOf[msg.sender] = available - total;
        for (uint256 i; i < servers.length; ++i) {
            Lane storage lane = _lanes[msg.sender][servers[i]];
            lane.amount = SafeCast.toUint128(lane.amount + amounts[i]);
            emit Allocated(msg.sender, servers[i], amounts[i], lane.amount);
        }
    }

    /// @notice Withdraw `amount` of the caller's unallocated deposit (no server relies on it).
    /// @param amount Wei (> 0, <= the unallocated balance).
    function withdrawDeposit(uint256 amount) external nonReentrant {
        if (amount == 0) revert PaymentEscrow_ZeroAmount();
        uint256 available = balanceOf[msg.sender];
        if (amount > available) revert PaymentEscrow_InsufficientBalance(available, amount);
        balanceOf[msg.sender] = available - amount;
        totalDeposits -= amount;
        emit DepositWithdrawn(msg.sender, amount);
        Address.sendValue(payable(msg.sender), amount);
    }

    /// @notice Announce a reclaim of up to `amount` of the caller's lane for `server`, takeable
    ///         after `reclaimDelay`; the server keeps redeeming until then. A new announcement
    ///         replaces the old one and restarts the delay.
    /// @param server The lane's server.
    /// @param amount Wei (> 0; what is left at reclaim time is taken if less).
    function announceReclaim(address server, uint256 amount) external {
        if (amount == 0) revert PaymentEscrow_ZeroAmount();
        Lane storage lane = _lanes[msg.sender][server];
        lane.reclaimAmount = SafeCast.toUint128(amount);
        lane.reclaimAt = uint64(block.timestamp) + reclaimDelay;
        emit ReclaimAnnounced(msg.sender, server, amount, lane.reclaimAt);
    }

    /// @notice Withdraw an announced reclaim.
    /// @param server The lane's server.
    function cancelReclaim(address server) external {
        Lane storage lane = _lanes[msg.sender][server];
        if (lane.reclaimAmount == 0) revert PaymentEscrow_NoReclaimAnnounced(msg.sender, server);
        lane.reclaimAmount = 0;
        lane.reclaimAt = 0;
        emit ReclaimCancelled(msg.sender, server);
    }

    /// @notice Take the announced reclaim of a lane (or what is left in it, if less) once its
    ///         delay has passed; the wei are sent to the caller.
    /// @param server The lane's server.
    function reclaim(address server) external nonReentrant {
        Lane storage lane = _lanes[msg.sender][server];
        if (lane.reclaimAmount == 0) revert PaymentEscrow_NoReclaimAnnounced(msg.sender, server);
        if (block.timestamp < lane.reclaimAt) revert PaymentEscrow_ReclaimLocked(lane.reclaimAt, block.timestamp);
        uint256 amount = lane.reclaimAmount < lane.amount ? lane.reclaimAmount : lane.amount;
        lane.reclaimAmount = 0;
        lane.reclaimAt = 0;
        lane.amount -= uint128(amount);
        totalDeposits -= amount;
        emit Reclaimed(msg.sender, server, amount);
        if (amount != 0) Address.sendValue(payable(msg.sender), amount);
    }

    // ------------------------------------------------------------------ servers

    /// @notice Declare the caller's price and credit limit (Active servers only).
    /// @param price Wei per block per token (0 = free).
    /// @param creditLimit Wei a client's vouchers may lag behind before the server stops serving.
    function setPrice(uint128 price, uint128 creditLimit) external {
        if (!registry.isActive(msg.sender)) revert PaymentEscrow_NotActiveServer(msg.sender);
        _terms[msg.sender] = Terms(price, creditLimit);
        emit PriceSet(msg.sender, price, creditLimit);
    }

    /// @notice Redeem vouchers made out to the caller (an Active server), one per client at
    ///         best (its newest: they are cumulative). Each pays the part of its cumulative
    ///         amount not redeemed yet, at most what the client's lane for the caller holds; one
    ///         that pays nothing is skipped (event), so one empty lane cannot make the batch revert.
    ///         The fee goes to the audit pool, the rest to `earned[msg.sender]`.
    /// @param vouchers Vouchers whose `server` is the caller.
    /// @param signatures The clients' 65-byte EIP-712 signatures, in the same order.
    /// @param maxFeeBps The highest fee the caller accepts (guards against a fee raised mid-flight).
    /// @return net What the caller earned by this call, after the fee.
    function redeem(Voucher[] calldata vouchers, bytes[] calldata signatures, uint16 maxFeeBps)
        external
        returns (uint256 net)
    {
        if (vouchers.length == 0) revert PaymentEscrow_EmptyBatch();
        if (vouchers.length != signatures.length) {
            revert PaymentEscrow_LengthMismatch(vouchers.length, signatures.length);
        }
        if (feeBps > maxFeeBps) revert PaymentEscrow_FeeAboveLimit(feeBps, maxFeeBps);
        if (!registry.isActive(msg.sender)) revert PaymentEscrow_NotActiveServer(msg.sender);
        uint256 gross;
        for (uint256 i; i < vouchers.length; ++i) gross += _redeemOne(vouchers[i], signatures[i]);
        if (gross == 0) revert PaymentEscrow_NothingToRedeem(msg.sender);
        uint256 fee = gross * feeBps / 10_000;
        net = gross - fee;
        totalDeposits -= gross;
        totalEarned += net;
        auditPool += fee;
        earned[msg.sender] += net;
        emit BatchRedeemed(msg.sender, vouchers.length, gross, fee);
    }

    // ------------------------------------------------------------------ earners

    /// @notice Withdraw all of the caller's earnings and audit credits.
    function withdraw() external nonReentrant {
        uint256 amount = earned[msg.sender];
        if (amount == 0) revert PaymentEscrow_NothingToWithdraw(msg.sender);
        earned[msg.sender] = 0;
        totalEarned -= amount;
        emit Withdrawn(msg.sender, amount);
        Address.sendValue(payable(msg.sender), amount);
    }

    /// @notice Move `amount` of the caller's earnings into its own (unallocated) deposit, to pay
    ///         other servers.
    /// @param amount Wei (> 0, <= earned).
    function spendEarned(uint256 amount) external {
        if (amount == 0) revert PaymentEscrow_ZeroAmount();
        uint256 available = earned[msg.sender];
        if (amount > available) revert PaymentEscrow_InsufficientEarned(available, amount);
        earned[msg.sender] = available - amount;
        totalEarned -= amount;
        uint256 balance = balanceOf[msg.sender] + amount;
        balanceOf[msg.sender] = balance;
        totalDeposits += amount;
        emit EarnedSpent(msg.sender, amount, balance);
    }

    // ------------------------------------------------------------------ audit pool

    /// @notice Add the sent value to the audit pool (anyone may top it up).
    function fundAuditPool() external payable {
        if (msg.value == 0) revert PaymentEscrow_ZeroAmount();
        auditPool += msg.value;
        emit AuditPoolFunded(msg.sender, msg.value);
    }

    /// @notice Credit each of `auditors` `amountEach` from the audit pool (audit payer only),
    ///         or an equal share of the pool if it holds less; never reverts for a short pool,
    ///         so a court resolving a dispute cannot be blocked by it.
    /// @param auditors The drawn auditors to pay for an audit.
    /// @param amountEach Wei each should get.
    /// @return paidEach What each was credited (withdrawable with `withdraw`).
    function credit(address[] calldata auditors, uint256 amountEach) external returns (uint256 paidEach) {
        if (msg.sender != auditPayer) revert PaymentEscrow_NotAuditPayer(msg.sender);
        if (auditors.length == 0) return 0;
        uint256 share = auditPool / auditors.length;
        paidEach = amountEach < share ? amountEach : share;
        if (paidEach == 0) return 0;
        uint256 total = paidEach * auditors.length;
        auditPool -= total;
        totalEarned += total;
        for (uint256 i; i < auditors.length; ++i) {
            earned[auditors[i]] += paidEach;
            emit AuditorCredited(auditors[i], paidEach);
        }
    }

    // ------------------------------------------------------------------ governance

    /// @notice Change the protocol fee (0 .. MAX_FEE_BPS basis points), for later redemptions.
    /// @param value Basis points.
    function setFee(uint16 value) external onlyOwner {
        _setFee(value);
    }

    /// @notice Change the reclaim delay (bounded); announced reclaims keep their time.
    /// @param value Seconds.
    function setReclaimDelay(uint64 value) external onlyOwner {
        _setReclaimDelay(value);
    }

    /// @notice Name who may credit auditors from the pool (the DisputeCourt, or a keeper).
    /// @param payer The audit payer (address(0) disables crediting).
    function setAuditPayer(address payer) external onlyOwner {
        auditPayer = payer;
        emit AuditPayerChanged(payer);
    }

    /// @notice Disabled: the escrow must keep governance to stay tunable.
    function renounceOwnership() public pure override {
        revert PaymentEscrow_RenounceDisabled();
    }

    // ------------------------------------------------------------------ views

    /// @notice A client's lane for a server.
    function laneOf(address client, address server) external view returns (Lane memory) {
        return _lanes[client][server];
    }

    /// @notice Cumulative wei `server` has redeemed from `client`.
    function redeemed(address client, address server) external view returns (uint256) {
        return _lanes[client][server].redeemed;
    }

    /// @notice A server's declared price and credit limit.
    function termsOf(address server) external view returns (Terms memory) {
        return _terms[server];
    }

    /// @notice A server's price in wei per block per token.
    function priceOf(address server) external view returns (uint256) {
        return _terms[server].price;
    }

    /// @notice The EIP-712 digest a client signs for `v`.
    function hashVoucher(Voucher calldata v) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(VOUCHER_TYPEHASH, v.client, v.server, v.cumulative, v.receipts)));
    }

    /// @notice What redeeming a voucher of `cumulative` from `client` to `server` would pay now
    ///         (before the fee).
    function redeemable(address client, address server, uint256 cumulative) external view returns (uint256) {
        Lane storage lane = _lanes[client][server];
        uint256 owed = cumulative > lane.redeemed ? cumulative - lane.redeemed : 0;
        return owed < lane.amount ? owed : lane.amount;
    }

    // ------------------------------------------------------------------ internal

    function _credit(address client) private {
        if (msg.value == 0) revert PaymentEscrow_ZeroAmount();
        uint256 balance = balanceOf[client] + msg.value;
        balanceOf[client] = balance;
        totalDeposits += msg.value;
        emit Deposited(client, msg.sender, msg.value, balance);
    }

    /// @dev Pay one voucher into the batch's gross; the batch settles totals and the fee.
    function _redeemOne(Voucher calldata v, bytes calldata signature) private returns (uint256 paid) {
        if (v.server != msg.sender) revert PaymentEscrow_NotVoucherServer(v.server, msg.sender);
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(hashVoucher(v), signature);
        if (err != ECDSA.RecoverError.NoError || signer != v.client) {
            revert PaymentEscrow_BadSignature(v.client, v.server);
        }
        Lane storage lane = _lanes[v.client][v.server];
        uint256 owed = v.cumulative > lane.redeemed ? v.cumulative - lane.redeemed : 0;
        paid = owed < lane.amount ? owed : lane.amount;
        if (paid == 0) {
            emit VoucherSkipped(v.client, v.server, v.cumulative);
            return 0;
        }
        lane.redeemed += uint128(paid);
        lane.amount -= uint128(paid);
        emit VoucherRedeemed(v.client, v.server, v.cumulative, paid, v.receipts);
    }

    function _setFee(uint16 value) private {
        if (value > MAX_FEE_BPS) revert PaymentEscrow_FeeOutOfBounds(value, MAX_FEE_BPS);
        feeBps = value;
        emit FeeChanged(value);
    }

    function _setReclaimDelay(uint64 value) private {
        if (value < MIN_RECLAIM_DELAY || value > MAX_RECLAIM_DELAY) revert PaymentEscrow_DelayOutOfBounds(value);
        reclaimDelay = value;
        emit ReclaimDelayChanged(value);
    }
}
