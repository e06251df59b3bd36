// @ts-check
// Scrolling that follows the conversation, but not a reader who scrolled up: they get a "New
// reply" button instead.

// Within this distance of the bottom the reader is "following" the conversation.
const FOLLOW_THRESHOLD_PX = 80;

export class Follow {
  /**
   * @param {HTMLElement} log the scrolling conversation
   * @param {HTMLElement} jump the "New reply" button
   */
  constructor(log, jump) {
    this.log = log;
    this.jump = jump;
    this.following = true;
    log.addEventListener("scroll", () => this.onScroll(), { passive: true });
    // When the box grows or the window shrinks, a reader following the conversation stays at
    // the end.
    new ResizeObserver(() => {
      if (this.following) log.scrollTop = log.scrollHeight;
    }).observe(log);
  }

  toBottom() {
    this.log.scrollTop = this.log.scrollHeight;
    this.following = true;
    this.jump.hidden = true;
  }

  // Something new at the end: scroll to it, or tell a reader who is reading above.
  followOrNotify() {
    if (this.following) this.toBottom();
    else this.jump.hidden = false;
  }

  /**
   * Adds content above what the reader is looking at, which stays in place.
   * @param {() => void} add
   */
  keepingPlace(add) {
    const fromBottom = this.log.scrollHeight - this.log.scrollTop;
    add();
    this.log.scrollTop = this.log.scrollHeight - fromBottom;
  }

  onScroll() {
    const log = this.log;
    this.following = log.scrollHeight - log.scrollTop - log.clientHeight <= FOLLOW_THRESHOLD_PX;
    if (this.following) this.jump.hidden = true;
  }
}
