//! The terminal's state and the only place it changes: [`App::update`] takes a
//! message (a key, a stream event, a response) and answers with the requests to send.

use std::cmp::Ordering;
use std::collections::HashMap;

use jiff::Timestamp;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use schemas::ActionKind;
use schemas::desk::{
    ActionOutcome, ActionReceipt, AlertDetail, DeskEvent, ErrorBody, HistoryEvent, QueueItem,
    QueueSort, Session,
};
use schemas::routing::AlertState;

use crate::format;
use crate::model::Desk;

/// From this width on, the queue and the detail pane sit side by side.
pub const WIDE: u16 = 140;

/// Rows a page key moves.
const PAGE: usize = 10;

/// A request for the network side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `GET /api/session`.
    Session,
    /// `GET /api/alerts/{id}`.
    Detail(String),
    /// An officer action: `POST /api/alerts/{id}/{verb}`, or `POST /api/handover/accept`
    /// when there is no alert.
    Act {
        /// The alert acted on (none for accepting the handover).
        alert_id: Option<String>,
        /// What.
        action: ActionKind,
    },
}

/// Why an action was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionError {
    /// The desk answered with an error (401, 403 `not_owner`, 404, …).
    Refused(ErrorBody),
    /// The request did not get an answer.
    Failed(String),
}

/// The state of the connection to the desk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// Connecting for the first time.
    Connecting,
    /// The change stream is open.
    Connected,
    /// The change stream broke; the client retries by itself.
    Disconnected {
        /// The last error.
        error: String,
        /// Attempts made since it broke.
        attempt: u32,
    },
}

/// Everything that changes the state.
#[derive(Debug, Clone)]
pub enum Msg {
    /// A key was pressed.
    Key(KeyEvent),
    /// An event of the change stream.
    Stream(DeskEvent),
    /// The session (who we are, centers, drill).
    Session(Session),
    /// An alert's detail arrived.
    Detail(Box<AlertDetail>),
    /// An alert's detail could not be fetched.
    DetailFailed {
        /// The alert.
        id: String,
        /// Why.
        error: String,
    },
    /// The answer to an action.
    Acted {
        /// The alert acted on.
        alert_id: Option<String>,
        /// What.
        action: ActionKind,
        /// The receipt, or why not.
        result: Result<ActionReceipt, ActionError>,
    },
    /// The connection changed.
    Connection(Connection),
    /// The clock (the desk's logical time) moved on.
    Tick(Timestamp),
    /// The terminal was resized.
    Resize(u16, u16),
}

/// Which screen the body shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// The queue (and, when wide or opened, the detail pane).
    Queue,
    /// The handover digests.
    Handover,
}

/// Which queue lines are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    /// Every open alert.
    #[default]
    All,
    /// Alerts the officer's center owns.
    MyCenter,
    /// Alerts nobody acknowledged yet.
    Unacknowledged,
    /// Escalated alerts.
    Escalated,
}

impl Filter {
    /// The next filter in the cycle.
    fn next(self) -> Self {
        match self {
            Filter::All => Filter::MyCenter,
            Filter::MyCenter => Filter::Unacknowledged,
            Filter::Unacknowledged => Filter::Escalated,
            Filter::Escalated => Filter::All,
        }
    }

    /// Its name in the queue's title.
    pub fn label(self) -> &'static str {
        match self {
            Filter::All => "all",
            Filter::MyCenter => "my center",
            Filter::Unacknowledged => "unacknowledged",
            Filter::Escalated => "escalated",
        }
    }
}

/// The name of a sort order in the queue's title.
pub fn sort_label(sort: QueueSort) -> &'static str {
    match sort {
        QueueSort::Severity => "severity",
        QueueSort::Age => "age",
        QueueSort::Deadline => "deadline",
        QueueSort::Owner => "owner",
    }
}

fn next_sort(sort: QueueSort) -> QueueSort {
    match sort {
        QueueSort::Severity => QueueSort::Age,
        QueueSort::Age => QueueSort::Deadline,
        QueueSort::Deadline => QueueSort::Owner,
        QueueSort::Owner => QueueSort::Severity,
    }
}

/// What a text prompt is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    /// A note on the alert.
    Note,
    /// The officer to assign the alert to.
    Assign,
    /// Text searched in the queue.
    Search,
}

/// A dialog on top of the screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modal {
    /// The key help.
    Help,
    /// Confirmation of an irreversible action.
    Confirm {
        /// The alert.
        alert_id: String,
        /// Resolve or false positive.
        action: ActionKind,
    },
    /// A line of text being typed.
    Prompt {
        /// What for.
        kind: PromptKind,
        /// The text so far.
        text: String,
        /// The alert it is about (none for a search).
        alert_id: Option<String>,
    },
}

/// A one-line message in the status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    /// The text.
    pub text: String,
    /// Whether it reports a failure or refusal.
    pub error: bool,
}

/// The verb of an action, for messages.
pub fn verb(action: &ActionKind) -> &'static str {
    match action {
        ActionKind::Acknowledge => "acknowledge",
        ActionKind::Assign { .. } => "assign",
        ActionKind::Note { .. } => "note",
        ActionKind::Escalate => "escalate",
        ActionKind::Resolve => "resolve",
        ActionKind::FalsePositive => "false positive",
        ActionKind::AcceptHandover => "accept handover",
    }
}

/// The terminal's whole state.
#[derive(Debug, Clone)]
pub struct App {
    /// The desk as the stream describes it.
    pub desk: Desk,
    /// The desk's logical time now.
    pub now: Timestamp,
    /// The connection to the desk.
    pub connection: Connection,
    /// The screen shown.
    pub screen: Screen,
    /// On a narrow terminal: the detail pane replaces the queue.
    pub detail_open: bool,
    /// A dialog, if any.
    pub modal: Option<Modal>,
    /// Queue order.
    pub sort: QueueSort,
    /// Queue filter.
    pub filter: Filter,
    /// Queue search text.
    pub search: String,
    /// The detail of the selected alert, once fetched.
    pub detail: Option<AlertDetail>,
    /// Lines scrolled in the detail pane.
    pub detail_scroll: u16,
    /// Lines scrolled in the handover screen.
    pub handover_scroll: u16,
    /// The status-bar message.
    pub flash: Option<Flash>,
    /// The terminal's size.
    pub size: (u16, u16),
    /// Set when the officer quits.
    pub quit: bool,
    /// Ids of the shown queue lines, in order.
    view: Vec<String>,
    view_dirty: bool,
    selected: usize,
    selected_id: Option<String>,
    /// The alert whose detail was last requested.
    detail_requested: Option<String>,
    /// Actions sent and not yet judged: action id → (alert, verb).
    sent: HashMap<String, (Option<String>, &'static str)>,
    /// The search in force when the search prompt opened.
    search_before: String,
}

impl App {
    /// A terminal of `size` (columns, rows) at `now`, before anything is known.
    pub fn new(now: Timestamp, size: (u16, u16)) -> Self {
        Self {
            desk: Desk::default(),
            now,
            connection: Connection::Connecting,
            screen: Screen::Queue,
            detail_open: false,
            modal: None,
            sort: QueueSort::default(),
            filter: Filter::default(),
            search: String::new(),
            detail: None,
            detail_scroll: 0,
            handover_scroll: 0,
            flash: None,
            size,
            quit: false,
            view: Vec::new(),
            view_dirty: false,
            selected: 0,
            selected_id: None,
            detail_requested: None,
            sent: HashMap::new(),
            search_before: String::new(),
        }
    }

    /// Whether the queue and the detail pane sit side by side.
    pub fn wide(&self) -> bool {
        self.size.0 >= WIDE
    }

    /// Ids of the shown queue lines, in order.
    pub fn view(&self) -> &[String] {
        &self.view
    }

    /// Index of the selected line in [`App::view`].
    pub fn selected(&self) -> usize {
        self.selected
    }

    /// The selected alert's queue line.
    pub fn selected_item(&self) -> Option<&QueueItem> {
        self.selected_id
            .as_ref()
            .and_then(|id| self.desk.queue.get(id))
    }

    /// The detail of the selected alert, if it is the one fetched.
    pub fn selected_detail(&self) -> Option<&AlertDetail> {
        let id = self.selected_id.as_ref()?;
        self.detail.as_ref().filter(|d| &d.item.id == id)
    }

    /// Applies one message; returns the requests to send.
    pub fn update(&mut self, msg: Msg) -> Vec<Request> {
        let mut out = Vec::new();
        match msg {
            Msg::Key(key) => self.key(key, &mut out),
            Msg::Stream(event) => self.stream(event),
            Msg::Session(session) => {
                self.desk.session = Some(session);
                self.view_dirty = true;
            }
            Msg::Detail(detail) => {
                if self.detail.as_ref().map(|d| &d.item.id) != Some(&detail.item.id) {
                    self.detail_scroll = 0;
                }
                self.detail = Some(*detail);
            }
            Msg::DetailFailed { id, error } => {
                if self.detail_requested.as_ref() == Some(&id) {
                    self.detail_requested = None;
                }
                // An alert that left the queue meanwhile is no failure worth a message.
                if self.desk.queue.contains_key(&id) {
                    self.flash_error(format!(
                        "cannot load {}: {error}",
                        format::short_id(&id, 12)
                    ));
                }
            }
            Msg::Acted {
                alert_id,
                action,
                result,
            } => self.acted(alert_id, &action, result),
            Msg::Connection(c) => {
                let back = c == Connection::Connected
                    && matches!(self.connection, Connection::Disconnected { .. });
                self.connection = c;
                if back {
                    self.flash = Some(Flash {
                        text: "reconnected to the desk".into(),
                        error: false,
                    });
                    // What the outage hid is fetched again, once the stream has said
                    // what the desk holds now (the selected alert may be gone).
                    self.detail_requested = None;
                    out.push(Request::Session);
                    return out;
                }
            }
            Msg::Tick(now) => self.now = now,
            Msg::Resize(w, h) => self.size = (w, h),
        }
        if self.view_dirty {
            self.rebuild_view();
        }
        self.want_detail(&mut out);
        out
    }

    fn stream(&mut self, event: DeskEvent) {
        let applied = self.desk.apply(event);
        if applied.queue_changed {
            self.view_dirty = true;
        }
        if let Some(id) = &self.selected_id
            && applied.touched.contains(id)
        {
            // Fetch the detail again: its content, routing or history changed.
            self.detail_requested = None;
        }
        for update in applied.actions {
            let HistoryEvent::Action {
                action_id, outcome, ..
            } = &update.entry.event
            else {
                continue;
            };
            let Some((alert, verb)) = self.sent.get(action_id).cloned() else {
                continue;
            };
            let on = alert
                .as_deref()
                .map(|a| format!(" on {}", format::short_id(a, 12)))
                .unwrap_or_default();
            match outcome {
                ActionOutcome::Pending => continue,
                ActionOutcome::Accepted => {
                    self.flash = Some(Flash {
                        text: format!("{verb}{on}: accepted by the dataflow"),
                        error: false,
                    });
                }
                ActionOutcome::Rejected { code, reason } => {
                    self.flash_error(format!("{verb}{on}: rejected ({code}): {reason}"));
                }
            }
            self.sent.remove(action_id);
        }
    }

    fn acted(
        &mut self,
        alert_id: Option<String>,
        action: &ActionKind,
        result: Result<ActionReceipt, ActionError>,
    ) {
        let verb = verb(action);
        let on = alert_id
            .as_deref()
            .map(|a| format!(" on {}", format::short_id(a, 12)))
            .unwrap_or_default();
        match result {
            Ok(receipt) if receipt.outcome == ActionOutcome::Accepted => {
                self.flash = Some(Flash {
                    text: format!("{verb}{on}: accepted by the dataflow"),
                    error: false,
                });
            }
            Ok(receipt) => {
                self.flash = Some(Flash {
                    text: format!("{verb}{on}: sent, waiting for the dataflow"),
                    error: false,
                });
                self.sent.insert(receipt.action_id, (alert_id, verb));
            }
            Err(ActionError::Refused(body)) => {
                self.flash_error(format!("{verb}{on} refused: {}", body.message));
            }
            Err(ActionError::Failed(e)) => self.flash_error(format!("{verb}{on} failed: {e}")),
        }
    }

    fn flash_error(&mut self, text: String) {
        self.flash = Some(Flash { text, error: true });
    }

    fn key(&mut self, key: KeyEvent, out: &mut Vec<Request>) {
        if key.kind != KeyEventKind::Press {
            return;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.quit = true;
            return;
        }
        match self.modal.take() {
            Some(Modal::Help) => {
                // Any key closes the help.
            }
            Some(Modal::Confirm { alert_id, action }) => match key.code {
                KeyCode::Char('y' | 'Y') | KeyCode::Enter => {
                    self.act(Some(alert_id), action, out);
                }
                KeyCode::Char('n' | 'N') | KeyCode::Esc => {
                    self.flash = Some(Flash {
                        text: format!("{} cancelled", verb(&action)),
                        error: false,
                    });
                }
                _ => self.modal = Some(Modal::Confirm { alert_id, action }),
            },
            Some(Modal::Prompt {
                kind,
                mut text,
                alert_id,
            }) => match key.code {
                KeyCode::Enter => self.submit(kind, text, alert_id, out),
                KeyCode::Esc => {
                    if kind == PromptKind::Search {
                        self.search = std::mem::take(&mut self.search_before);
                        self.view_dirty = true;
                    }
                }
                code => {
                    match code {
                        KeyCode::Backspace => {
                            text.pop();
                        }
                        KeyCode::Char(c) if text.chars().count() < 500 => text.push(c),
                        _ => {}
                    }
                    if kind == PromptKind::Search {
                        self.search.clone_from(&text);
                        self.view_dirty = true;
                    }
                    self.modal = Some(Modal::Prompt {
                        kind,
                        text,
                        alert_id,
                    });
                }
            },
            None => match self.screen {
                Screen::Handover => self.handover_key(key, out),
                Screen::Queue => self.queue_key(key, out),
            },
        }
    }

    fn submit(
        &mut self,
        kind: PromptKind,
        text: String,
        alert_id: Option<String>,
        out: &mut Vec<Request>,
    ) {
        let text = text.trim().to_string();
        match kind {
            PromptKind::Search => {
                self.search = text;
                self.view_dirty = true;
            }
            PromptKind::Note if !text.is_empty() => {
                self.act(alert_id, ActionKind::Note { text }, out);
            }
            PromptKind::Assign if !text.is_empty() => {
                self.act(alert_id, ActionKind::Assign { officer_id: text }, out);
            }
            PromptKind::Note | PromptKind::Assign => {
                self.flash_error("nothing typed: nothing sent".into());
            }
        }
    }

    fn handover_key(&mut self, key: KeyEvent, out: &mut Vec<Request>) {
        match key.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('?') => self.modal = Some(Modal::Help),
            KeyCode::Char('h') | KeyCode::Esc => self.screen = Screen::Queue,
            KeyCode::Char('a') => self.act(None, ActionKind::AcceptHandover, out),
            KeyCode::Down | KeyCode::Char('j') => {
                self.handover_scroll = self.handover_scroll.saturating_add(1);
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.handover_scroll = self.handover_scroll.saturating_sub(1);
            }
            _ => {}
        }
    }

    fn queue_key(&mut self, key: KeyEvent, out: &mut Vec<Request>) {
        let reading = self.detail_open && !self.wide();
        match key.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('?') => self.modal = Some(Modal::Help),
            KeyCode::Char('h') => {
                self.screen = Screen::Handover;
                self.handover_scroll = 0;
            }
            KeyCode::Char('s') => {
                self.sort = next_sort(self.sort);
                self.view_dirty = true;
            }
            KeyCode::Char('f') => {
                self.filter = self.filter.next();
                self.view_dirty = true;
            }
            KeyCode::Char('/') => {
                self.search_before.clone_from(&self.search);
                self.modal = Some(Modal::Prompt {
                    kind: PromptKind::Search,
                    text: self.search.clone(),
                    alert_id: None,
                });
            }
            KeyCode::Enter if !self.wide() && self.selected_id.is_some() => {
                self.detail_open = !self.detail_open;
                self.detail_scroll = 0;
            }
            KeyCode::Esc | KeyCode::Backspace if reading => self.detail_open = false,
            KeyCode::Esc => {
                if self.flash.is_some() {
                    self.flash = None;
                } else if !self.search.is_empty() {
                    self.search.clear();
                    self.view_dirty = true;
                }
            }
            KeyCode::Down | KeyCode::Char('j') if reading => self.scroll_detail(1),
            KeyCode::Up | KeyCode::Char('k') if reading => self.scroll_detail(-1),
            KeyCode::PageDown if reading => self.scroll_detail(PAGE as i32),
            KeyCode::PageUp if reading => self.scroll_detail(-(PAGE as i32)),
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1),
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(-1),
            KeyCode::PageDown => self.move_selection(PAGE as isize),
            KeyCode::PageUp => self.move_selection(-(PAGE as isize)),
            KeyCode::Home | KeyCode::Char('g') => self.move_selection(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.move_selection(isize::MAX / 2),
            KeyCode::Char('J') => self.scroll_detail(1),
            KeyCode::Char('K') => self.scroll_detail(-1),
            KeyCode::Char('a') => self.on_selected(out, |_| Some(ActionKind::Acknowledge)),
            KeyCode::Char('e') => self.on_selected(out, |_| Some(ActionKind::Escalate)),
            KeyCode::Char('r') => self.confirm(ActionKind::Resolve),
            KeyCode::Char('x') => self.confirm(ActionKind::FalsePositive),
            KeyCode::Char('n') => self.prompt(PromptKind::Note, String::new()),
            KeyCode::Char('t') => {
                let me = self
                    .desk
                    .session
                    .as_ref()
                    .map(|s| s.officer.name.clone())
                    .unwrap_or_default();
                self.prompt(PromptKind::Assign, me);
            }
            _ => {}
        }
    }

    fn scroll_detail(&mut self, by: i32) {
        let v = i32::from(self.detail_scroll) + by;
        self.detail_scroll = u16::try_from(v.max(0)).unwrap_or(u16::MAX);
    }

    fn move_selection(&mut self, by: isize) {
        if self.view.is_empty() {
            return;
        }
        let last = self.view.len() - 1;
        let to = self.selected.saturating_add_signed(by).min(last);
        self.selected = to;
        self.selected_id = self.view.get(to).cloned();
    }

    /// Whether an action can be sent now; says why not otherwise.
    fn can_act(&mut self) -> bool {
        if matches!(self.connection, Connection::Connected) {
            return true;
        }
        self.flash_error("not connected to the desk: no action can be sent".into());
        false
    }

    fn on_selected(
        &mut self,
        out: &mut Vec<Request>,
        action: impl FnOnce(&QueueItem) -> Option<ActionKind>,
    ) {
        let Some(item) = self.selected_item() else {
            self.flash_error("no alert selected".into());
            return;
        };
        let id = item.id.clone();
        if let Some(action) = action(item) {
            self.act(Some(id), action, out);
        }
    }

    fn confirm(&mut self, action: ActionKind) {
        match self.selected_item() {
            Some(item) => {
                self.modal = Some(Modal::Confirm {
                    alert_id: item.id.clone(),
                    action,
                });
            }
            None => self.flash_error("no alert selected".into()),
        }
    }

    fn prompt(&mut self, kind: PromptKind, text: String) {
        match self.selected_item() {
            Some(item) => {
                self.modal = Some(Modal::Prompt {
                    kind,
                    text,
                    alert_id: Some(item.id.clone()),
                });
            }
            None => self.flash_error("no alert selected".into()),
        }
    }

    fn act(&mut self, alert_id: Option<String>, action: ActionKind, out: &mut Vec<Request>) {
        if !self.can_act() {
            return;
        }
        self.flash = Some(Flash {
            text: format!("{}: sending…", verb(&action)),
            error: false,
        });
        out.push(Request::Act { alert_id, action });
    }

    fn want_detail(&mut self, out: &mut Vec<Request>) {
        let Some(id) = &self.selected_id else {
            return;
        };
        if self.detail_requested.as_ref() != Some(id)
            && matches!(self.connection, Connection::Connected)
        {
            self.detail_requested = Some(id.clone());
            out.push(Request::Detail(id.clone()));
        }
    }

    /// Sorts and filters the queue again, keeping the selected alert selected.
    fn rebuild_view(&mut self) {
        self.view_dirty = false;
        let center = self.desk.center().map(str::to_string);
        let needle = self.search.to_ascii_lowercase();
        let mut items: Vec<&QueueItem> = self
            .desk
            .queue
            .values()
            .filter(|i| match self.filter {
                Filter::All => true,
                Filter::MyCenter => center.as_deref() == Some(i.owner.as_str()),
                Filter::Unacknowledged => i.state == AlertState::Open,
                Filter::Escalated => i.escalated,
            })
            .filter(|i| needle.is_empty() || matches_search(i, &needle))
            .collect();
        let sort = self.sort;
        items.sort_by(|a, b| compare(sort, a, b));
        self.view = items.into_iter().map(|i| i.id.clone()).collect();
        match self
            .selected_id
            .as_ref()
            .and_then(|id| self.view.iter().position(|v| v == id))
        {
            Some(i) => self.selected = i,
            None => {
                self.selected = self.selected.min(self.view.len().saturating_sub(1));
                self.selected_id = self.view.get(self.selected).cloned();
            }
        }
        if self.selected_id.is_none() {
            self.detail_open = false;
        }
    }
}

fn matches_search(i: &QueueItem, needle: &str) -> bool {
    let has = |s: &str| s.to_ascii_lowercase().contains(needle);
    has(&i.id) || has(&i.rule) || has(&i.owner) || i.title.as_deref().is_some_and(has)
}

/// Queue order: `sort`, then the id so equal lines never swap.
pub fn compare(sort: QueueSort, a: &QueueItem, b: &QueueItem) -> Ordering {
    let deadline = |i: &QueueItem| (i.ack_deadline.is_none(), i.ack_deadline);
    match sort {
        QueueSort::Severity => b
            .severity
            .cmp(&a.severity)
            .then_with(|| deadline(a).cmp(&deadline(b)))
            .then_with(|| a.opened_at.cmp(&b.opened_at)),
        QueueSort::Age => a.opened_at.cmp(&b.opened_at),
        QueueSort::Deadline => deadline(a)
            .cmp(&deadline(b))
            .then_with(|| b.severity.cmp(&a.severity)),
        QueueSort::Owner => a
            .owner
            .cmp(&b.owner)
            .then_with(|| b.severity.cmp(&a.severity))
            .then_with(|| a.opened_at.cmp(&b.opened_at)),
    }
    .then_with(|| a.id.cmp(&b.id))
}
