/**
 * Moves a PG's raft membership toward the replicas the PG map lists, one safe step at a time,
 * from its leader: add the new replicas as learners; promote a learner once it has caught up;
 * drop learners that left the map; and only when every listed replica votes, remove one voter
 * the map no longer lists (the leader too: raft hands leadership over once that commits).
 * A step refused because the previous one is not committed yet is simply tried again later.
 */
import type { Logger } from 'pino';
import type { GroupId, Membership, MultiRaft } from '../../kernel/raft/index.js';
import { ErrorCode, isFastblockError } from '../../kernel/errors.js';

/** A learner this close to the leader's last index is caught up enough to vote. */
const CATCH_UP_SLACK = 64;

export class MembershipDriver {
  constructor(
    private readonly raft: MultiRaft,
    private readonly logger: Logger,
  ) {}

  /** One step for one PG; `target` are raft node ids in map order. */
  drive(id: GroupId, target: readonly number[]): void {
    const group = this.raft.group(id);
    if (!group || group.role !== 'leader') return;
    const next = this.nextStep(group.membership, target, (node) => {
      const progress = group.status().progress.get(node);
      return progress !== undefined && progress.match + CATCH_UP_SLACK >= group.log.lastIndex();
    });
    if (!next) return;
    try {
      group.proposeMembership(next.membership);
      this.logger.info({ pg: id, step: next.step, voters: next.membership.voters, learners: next.membership.learners }, 'PG membership change proposed');
    } catch (err) {
      if (!isFastblockError(err, ErrorCode.BUSY) && !isFastblockError(err, ErrorCode.NOT_LEADER)) this.logger.warn({ err, pg: id }, 'membership change refused');
    }
  }

  nextStep(m: Membership, target: readonly number[], caughtUp: (node: number) => boolean): { step: string; membership: Membership } | undefined {
    const missing = target.filter((n) => !m.voters.includes(n) && !m.learners.includes(n));
    if (missing.length > 0) return { step: 'add learners', membership: { voters: m.voters, learners: [...m.learners, ...missing] } };
    const ready = m.learners.find((n) => target.includes(n) && caughtUp(n));
    if (ready !== undefined) {
      return { step: 'promote', membership: { voters: [...m.voters, ready], learners: m.learners.filter((n) => n !== ready) } };
    }
    const strays = m.learners.filter((n) => !target.includes(n));
    if (strays.length > 0) return { step: 'drop learners', membership: { voters: m.voters, learners: m.learners.filter((n) => target.includes(n)) } };
    if (!target.every((n) => m.voters.includes(n))) return undefined;
    const extra = m.voters.find((n) => !target.includes(n));
    if (extra !== undefined) return { step: 'remove voter', membership: { voters: m.voters.filter((n) => n !== extra), learners: m.learners } };
    return undefined;
  }
}
